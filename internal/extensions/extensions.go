// Package extensions keeps the controller's extensions: a published
// extension is a package (the role package format, stored and copied
// between servers like any package) whose extension.json is checked at
// publish, plus a record in the replicated state naming its version,
// handlers and settings schema. Extensions belong to a tenant; the default
// tenant's, and the built-in ones, serve every tenant (as images do).
// Sealer encrypts the protected settings roles give them.
package extensions

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Packages stores and returns packages (the fabric's package store).
type Packages interface {
	PutPackage(ctx context.Context, r io.Reader) (api.Package, error)
	Package(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Store is the controller's extensions.
type Store struct {
	st   state.Store
	pkgs Packages
}

// New returns the store.
func New(st state.Store, pkgs Packages) *Store { return &Store{st: st, pkgs: pkgs} }

// Key is where the state keeps one version of a tenant's extension.
func Key(tenant, name, version string) string { return tenant + "/" + name + "/" + version }

// Publish stores an extension archive read from r for tenant. The archive
// must be a package a node would unpack (pkgarchive's rules) with a valid
// extension.json at its root; a name and version published before in the
// tenant, or a built-in's name, is a conflict (a version never changes
// under the instances that run it). A refused archive changes no
// extension (its bytes may stay in the package store, unnamed, as an
// upload that was never deployed does).
func (s *Store) Publish(ctx context.Context, tenant string, r io.Reader) (api.Extension, error) {
	pkg, err := s.pkgs.PutPackage(ctx, r)
	if err != nil {
		return api.Extension{}, err
	}
	rc, err := s.pkgs.Package(ctx, pkg.Digest)
	if err != nil {
		return api.Extension{}, err
	}
	m, err := ReadManifest(rc)
	rc.Close()
	if err != nil {
		return api.Extension{}, err
	}
	if _, ok := builtIn(m.Name); ok {
		return api.Extension{}, api.Errorf(api.CodeConflict, "%s: %s is a built-in extension's name: use another", api.ExtensionManifestFile, m.Name)
	}
	ext := api.Extension{ExtensionManifest: m, Tenant: tenant, Package: pkg.Digest, Size: pkg.Size, PublishedAt: time.Now().UTC()}
	data, _ := json.Marshal(ext)
	key := Key(tenant, m.Name, m.Version)
	_, err = s.st.Apply(ctx, []state.Op{
		{Kind: state.KindExtensions, Key: key, Check: true, Rev: 0},
		{Kind: state.KindExtensions, Key: key, Value: data},
	})
	if errors.Is(err, state.ErrConflict) {
		return api.Extension{}, api.Errorf(api.CodeConflict, "extension %s version %s is already published: versions never change, publish a higher one", m.Name, m.Version)
	}
	if err != nil {
		return api.Extension{}, fmt.Errorf("extensions: publish %s %s: %w", m.Name, m.Version, err)
	}
	return ext, nil
}

// ReadManifest finds extension.json at the root of a package (a gzip'd
// tar) and parses it (api.ParseExtensionManifest).
func ReadManifest(r io.Reader) (api.ExtensionManifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return api.ExtensionManifest{}, api.Errorf(api.CodeInvalid, "extension archive: not a gzip'd tar: %v", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return api.ExtensionManifest{}, api.Errorf(api.CodeInvalid, "extension archive: no %s at its root", api.ExtensionManifestFile)
		}
		if err != nil {
			return api.ExtensionManifest{}, api.Errorf(api.CodeInvalid, "extension archive: %v", err)
		}
		if path.Clean(hdr.Name) != api.ExtensionManifestFile {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return api.ExtensionManifest{}, api.Errorf(api.CodeInvalid, "extension archive: %s is not a regular file", api.ExtensionManifestFile)
		}
		if hdr.Size > api.MaxManifestBytes {
			return api.ExtensionManifest{}, api.Errorf(api.CodeInvalid, "extension archive: %s is %d bytes; at most %d", api.ExtensionManifestFile, hdr.Size, api.MaxManifestBytes)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return api.ExtensionManifest{}, api.Errorf(api.CodeInvalid, "extension archive: %v", err)
		}
		return api.ParseExtensionManifest(data)
	}
}

// List returns the extensions a tenant may use: its own, the default
// tenant's and the built-in ones (every tenant's with api.AllTenants),
// by name, then version, then tenant.
func (s *Store) List(tenant string) []api.Extension {
	out := builtIns()
	for _, e := range s.st.List(state.KindExtensions, "") {
		var ext api.Extension
		if json.Unmarshal(e.Value, &ext) != nil {
			continue
		}
		if tenant == api.AllTenants || ext.Tenant == tenant || ext.Tenant == api.DefaultTenant {
			out = append(out, ext)
		}
	}
	slices.SortFunc(out, func(a, b api.Extension) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := api.CompareExtensionVersions(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Tenant, b.Tenant)
	})
	return out
}

// Get returns the extension version a tenant names (see Lookup).
func (s *Store) Get(tenant, name, version string) (api.Extension, error) {
	ext, ok := Lookup(s.st, tenant, name, version)
	if !ok {
		if version == "" {
			return api.Extension{}, api.Errorf(api.CodeNotFound, "no extension named %s", name)
		}
		return api.Extension{}, api.Errorf(api.CodeNotFound, "no extension %s version %s", name, version)
	}
	return ext, nil
}

// Lookup finds the extension a tenant names: a built-in one, else the
// tenant's own, else the default tenant's; with version empty, the newest
// version of the first of these that has the name.
func Lookup(st state.Store, tenant, name, version string) (api.Extension, bool) {
	if ext, ok := builtIn(name); ok {
		return ext, version == "" || version == ext.Version
	}
	for _, t := range []string{tenant, api.DefaultTenant} {
		var best api.Extension
		found := false
		for _, e := range st.List(state.KindExtensions, t+"/"+name+"/") {
			var ext api.Extension
			if json.Unmarshal(e.Value, &ext) != nil || ext.Name != name {
				continue
			}
			if version != "" && ext.Version == version {
				return ext, true
			}
			if version == "" && (!found || api.CompareExtensionVersions(ext.Version, best.Version) > 0) {
				best, found = ext, true
			}
		}
		if found {
			return best, true
		}
	}
	return api.Extension{}, false
}
