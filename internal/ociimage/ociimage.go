// Package ociimage reads container images as users have them (a `docker
// save` tarball, an OCI image layout folder, or a tar of one) and turns them
// into what Weft stores: one flattened root filesystem tar and the image's
// run settings. It is the one package that uses go-containerregistry.
package ociimage

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/untar"
)

// Flat is an image flattened for upload. Remove deletes its temporary file.
type Flat struct {
	Rootfs api.ImageFile // named api.ImageFileRootfs
	Path   string        // the flattened tar on local disk
	Config api.ContainerImageConfig
	Arch   string
}

// Remove deletes the temporary rootfs tar.
func (f *Flat) Remove() error { return os.Remove(f.Path) }

// FromArchive reads a docker-save tarball, an OCI layout folder, or a tar
// of an OCI layout, checks that it is a linux image for this machine's
// architecture, and flattens its layers into a temporary file in tmpDir.
func FromArchive(path, tmpDir string) (*Flat, error) {
	img, cleanup, err := open(path, tmpDir)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("ociimage: %s: read the image config: %w", path, err)
	}
	if cf.OS != "" && cf.OS != "linux" {
		return nil, fmt.Errorf("ociimage: %s is a %s image; Weft runs linux images", path, cf.OS)
	}
	if cf.Architecture != "" && cf.Architecture != runtime.GOARCH {
		return nil, fmt.Errorf("ociimage: %s is an image for %s, and this machine is %s", path, cf.Architecture, runtime.GOARCH)
	}
	cfg := api.ContainerImageConfig{
		Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, Env: cf.Config.Env,
		WorkingDir: cf.Config.WorkingDir, User: cf.Config.User,
	}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return nil, fmt.Errorf("ociimage: %s has no entrypoint and no cmd: nothing to run", path)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	flat, err := writeTemp(tmpDir, func(w io.Writer) error {
		_, err := io.Copy(w, rc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ociimage: %s: read its layers: %w", path, err)
	}
	flat.Config, flat.Arch = cfg, runtime.GOARCH
	return flat, nil
}

// FromDir makes a single-layer image of a folder's contents.
func FromDir(dir string, cfg api.ContainerImageConfig, tmpDir string) (*Flat, error) {
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return nil, errors.New("ociimage: an image needs an entrypoint (--entrypoint)")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("ociimage: %s is not a folder", dir)
	}
	flat, err := writeTemp(tmpDir, func(w io.Writer) error { return tarDir(w, dir) })
	if err != nil {
		return nil, fmt.Errorf("ociimage: %s: %w", dir, err)
	}
	flat.Config, flat.Arch = cfg, runtime.GOARCH
	return flat, nil
}

// writeTemp writes a rootfs tar to a temporary file, hashing it on the way.
func writeTemp(tmpDir string, write func(io.Writer) error) (*Flat, error) {
	f, err := os.CreateTemp(tmpDir, "weft-rootfs-*.tar")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	cw := &counter{}
	err = write(io.MultiWriter(f, h, cw))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	return &Flat{
		Path:   f.Name(),
		Rootfs: api.ImageFile{Name: api.ImageFileRootfs, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: cw.n},
	}, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// open finds the one image in path for this platform.
func open(path, tmpDir string) (v1.Image, func(), error) {
	none := func() {}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, none, fmt.Errorf("ociimage: %w", err)
	}
	if fi.IsDir() {
		img, err := fromLayout(path)
		return img, none, err
	}
	names, err := tarNames(path)
	if err != nil {
		return nil, none, fmt.Errorf("ociimage: %s is not a tar archive of an image: %w", path, err)
	}
	switch {
	case names["manifest.json"]:
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return nil, none, fmt.Errorf("ociimage: %s: %w", path, err)
		}
		return img, none, nil
	case names["oci-layout"] && names["index.json"]:
		dir, err := os.MkdirTemp(tmpDir, "weft-oci-*")
		if err != nil {
			return nil, none, err
		}
		cleanup := func() { os.RemoveAll(dir) }
		if err := untarPlain(path, dir); err != nil {
			cleanup()
			return nil, none, fmt.Errorf("ociimage: %s: %w", path, err)
		}
		img, err := fromLayout(dir)
		if err != nil {
			cleanup()
			return nil, none, err
		}
		return img, cleanup, nil
	}
	return nil, none, fmt.Errorf("ociimage: %s is neither a docker-save tarball (manifest.json) nor an OCI image layout (oci-layout, index.json)", path)
}

func fromLayout(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("ociimage: %s is not an OCI image layout: %w", dir, err)
	}
	return pick(idx, dir)
}

// pick chooses the index's image for linux on this architecture, looking
// one level into nested indexes (multi-platform images).
func pick(idx v1.ImageIndex, where string) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("ociimage: %s: %w", where, err)
	}
	var seen []string
	for _, d := range m.Manifests {
		if d.Platform != nil {
			seen = append(seen, d.Platform.OS+"/"+d.Platform.Architecture)
			if d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH {
				continue
			}
		}
		switch {
		case d.MediaType.IsImage():
			return idx.Image(d.Digest)
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("ociimage: %s: %w", where, err)
			}
			return pick(child, where)
		}
	}
	if len(seen) > 0 {
		return nil, fmt.Errorf("ociimage: %s has images for %s, none for linux/%s", where, strings.Join(seen, ", "), runtime.GOARCH)
	}
	return nil, fmt.Errorf("ociimage: %s holds no image", where)
}

// tarNames lists the top-level names in a tar file (reading it all, which
// also catches a truncated archive early).
func tarNames(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		names[strings.TrimPrefix(filepath.Clean(h.Name), "./")] = true
	}
}

// untarPlain unpacks an OCI layout tar: regular files and folders only.
func untarPlain(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = untar.Extract(f, dir, untar.Options{Entry: func(h *tar.Header) error {
		switch h.Typeflag { // modes: the layout is only read by this process
		case tar.TypeReg:
			h.Mode = 0o644
		case tar.TypeDir:
			h.Mode = 0o755
		default:
			return untar.ErrSkip
		}
		return nil
	}})
	return err
}

// tarDir writes dir's tree as a tar with paths relative to dir, owned by
// root, keeping modes and symlinks.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "root", "root"
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
