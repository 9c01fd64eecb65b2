// Package images keeps container and VM images for the controller: each
// image's files live in the storage service (blobs named by the SHA-256 of
// their bytes, so identical files are stored once), its record in the
// controller's state. Uploading is two steps: PutFile for each file (verified
// against its digest), then Create, which checks that every file it names is
// stored. A failed or abandoned import leaves no image behind.
//
// In a cluster each server's storage holds its own copy of every image's
// files: a server copies what it lacks from the others (RunCopies, and
// before answering for a file it lacks), so images outlive the server
// they were uploaded to.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/peercopy"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage/blobclient"
)

// container is the blob container the files go in.
const container = "images"

// MaxFileSize bounds one image file (a VM disk is the largest).
const MaxFileSize = 64 << 30

var (
	digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// Store is the controller's image store.
type Store struct {
	st    state.Store
	blobs *blobclient.Client // nil when the server runs without the storage service
	log   *slog.Logger
	fetch Fetch
}

// Fetch gets an image file from another server's own storage; nil on a
// server alone.
type Fetch func(ctx context.Context, digest string) (io.ReadCloser, error)

// New returns the store; blobs is the client of the storage service's
// system account, or nil when there is no storage service.
func New(st state.Store, blobs *blobclient.Client, fetch Fetch, log *slog.Logger) *Store {
	return &Store{st: st, blobs: blobs, log: log, fetch: fetch}
}

// orphanAge is how long a copy of a file no image names is kept: an import
// stores its files before it creates the image that names them, and a
// slow import of large files may take hours.
const orphanAge = 24 * time.Hour

// RunCopies keeps this server's storage holding every file of every
// image, copying what it lacks from the other servers, and drops its
// copies of files no image names any more (the image was deleted through
// another server), until ctx ends.
func (s *Store) RunCopies(ctx context.Context) {
	if s.fetch == nil || s.blobs == nil {
		return
	}
	peercopy.Keep(ctx, s.st, s.log, "image file", func(ctx context.Context) []string {
		missing, err := s.reconcileFiles(ctx, orphanAge)
		if err != nil {
			s.log.Warn("image files not checked", "err", err)
		}
		return missing
	}, s.copyFile)
}

// reconcileFiles deletes the stored files no image names that are older
// than age, and returns the files images name that are not stored here.
func (s *Store) reconcileFiles(ctx context.Context, age time.Duration) ([]string, error) {
	stored, err := s.blobs.List(ctx, container, "files/")
	if err != nil {
		return nil, err
	}
	named := s.fileSizes()
	here := map[string]bool{}
	for _, b := range stored {
		digest := "sha256:" + strings.TrimPrefix(b.Name, "files/")
		here[digest] = true
		if _, ok := named[digest]; ok || time.Since(b.LastModified) < age {
			continue
		}
		if err := s.blobs.Delete(ctx, container, b.Name); err != nil {
			return nil, err
		}
		s.log.Info("deleted the copy of an image file no image names", "digest", digest)
	}
	var missing []string
	for digest := range named {
		if !here[digest] {
			missing = append(missing, digest)
		}
	}
	return missing, nil
}

// fileSizes lists the files images name, with their sizes.
func (s *Store) fileSizes() map[string]int64 {
	out := map[string]int64{}
	for _, img := range s.List(api.AllTenants) {
		for _, f := range img.Files {
			out[f.Digest] = f.Size
		}
	}
	return out
}

// copyFile gets a file an image names from another server and stores it
// here, checking its digest.
func (s *Store) copyFile(ctx context.Context, digest string) error {
	size, ok := s.fileSizes()[digest]
	if !ok || s.fetch == nil {
		return api.Errorf(api.CodeNotFound, "no image file %s", digest)
	}
	rc, err := s.fetch(ctx, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.PutFile(ctx, digest, size, rc)
}

// orCopy runs read, and again after copying the file from another server
// when this one lacks it and the read is not itself another server's copy.
func orCopy[T any](ctx context.Context, s *Store, digest string, read func() (T, error)) (T, error) {
	v, err := read()
	if !errors.Is(err, api.ErrNotFound) || peercopy.IsLocalOnly(ctx) {
		return v, err
	}
	if cerr := s.copyFile(ctx, digest); cerr != nil {
		return v, err
	}
	return read()
}

// Init makes the blob container the files live in.
func (s *Store) Init(ctx context.Context) error {
	if s.blobs == nil {
		return nil
	}
	if err := s.blobs.CreateContainer(ctx, container); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	return nil
}

func (s *Store) ready() error {
	if s.blobs == nil {
		return api.Errorf(api.CodeUnavailable, "images need the storage service, and this server runs without it (--no-storage)")
	}
	return nil
}

func fileBlob(digest string) string { return "files/" + strings.TrimPrefix(digest, "sha256:") }

// FileSize reports whether a file is stored, and its size.
func (s *Store) FileSize(ctx context.Context, digest string) (int64, error) {
	if err := s.ready(); err != nil {
		return 0, err
	}
	if !digestRe.MatchString(digest) {
		return 0, api.Errorf(api.CodeInvalid, "digest: %q is not sha256:<64 hex digits>", digest)
	}
	return orCopy(ctx, s, digest, func() (int64, error) {
		n, err := s.blobs.Size(ctx, container, fileBlob(digest))
		if errors.Is(err, blobclient.ErrNotFound) {
			return 0, api.Errorf(api.CodeNotFound, "no image file %s", digest)
		}
		return n, err
	})
}

// PutFile stores size bytes read from r as the file with the given digest.
// Bytes that do not hash to digest are refused and not kept. Storing a file
// that is already there succeeds without reading r.
func (s *Store) PutFile(ctx context.Context, digest string, size int64, r io.Reader) error {
	if err := s.ready(); err != nil {
		return err
	}
	if !digestRe.MatchString(digest) {
		return api.Errorf(api.CodeInvalid, "digest: %q is not sha256:<64 hex digits>", digest)
	}
	if size < 0 || size > MaxFileSize {
		return api.Errorf(api.CodeInvalid, "image file of %d bytes: the size must be known and at most %d", size, int64(MaxFileSize))
	}
	h := sha256.New()
	hashed := &countingReader{r: io.TeeReader(r, h)}
	err := s.blobs.Put(ctx, container, fileBlob(digest), hashed, size, blobclient.PutOptions{IfNoneExists: true})
	if errors.Is(err, blobclient.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("images: store file %s: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest || hashed.n != size {
		if err := s.blobs.Delete(context.WithoutCancel(ctx), container, fileBlob(digest)); err != nil {
			s.log.Warn("could not delete a file that failed its digest check", "digest", digest, "err", err)
		}
		return api.Errorf(api.CodeInvalid, "image file: the %d bytes sent hash to %s, not %s", hashed.n, got, digest)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// OpenFile returns a stored file, or the byte range rng of it ("bytes=a-b").
// The caller closes the response's body.
func (s *Store) OpenFile(ctx context.Context, digest, rng string) (*http.Response, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	if !digestRe.MatchString(digest) {
		return nil, api.Errorf(api.CodeInvalid, "digest: %q is not sha256:<64 hex digits>", digest)
	}
	return orCopy(ctx, s, digest, func() (*http.Response, error) {
		resp, err := s.blobs.Get(ctx, container, fileBlob(digest), rng)
		if errors.Is(err, blobclient.ErrNotFound) {
			return nil, api.Errorf(api.CodeNotFound, "no image file %s", digest)
		}
		return resp, err
	})
}

// Create records a tenant's image whose files were stored with PutFile. It
// fills in Digest, Size, Tenant and CreatedAt. A name in use is a conflict:
// images are immutable, so what a deployment runs never changes under it.
func (s *Store) Create(ctx context.Context, tenant string, img api.Image) (api.Image, error) {
	if err := s.ready(); err != nil {
		return api.Image{}, err
	}
	if err := validate(&img); err != nil {
		return api.Image{}, err
	}
	img.Size = 0
	for _, f := range img.Files {
		n, err := s.FileSize(ctx, f.Digest)
		var apiErr *api.Error
		if errors.As(err, &apiErr) && apiErr.Code == api.CodeNotFound {
			return api.Image{}, api.Errorf(api.CodeInvalid, "files: %s (%s) was not uploaded", f.Name, f.Digest)
		}
		if err != nil {
			return api.Image{}, err
		}
		if n != f.Size {
			return api.Image{}, api.Errorf(api.CodeInvalid, "files: %s is %d bytes, not %d", f.Name, n, f.Size)
		}
		img.Size += n
	}
	img.Digest = imageDigest(img)
	img.Tenant = tenant
	img.CreatedAt = time.Now().UTC()
	data, _ := json.Marshal(img)
	_, err := s.st.Apply(ctx, []state.Op{
		{Kind: state.KindImages, Key: Key(tenant, img.Name), Check: true, Rev: 0},
		{Kind: state.KindImages, Key: Key(tenant, img.Name), Value: data},
	})
	if errors.Is(err, state.ErrConflict) {
		return api.Image{}, api.Errorf(api.CodeConflict, "image %s already exists: delete it first, or use another name", img.Name)
	}
	if err != nil {
		return api.Image{}, fmt.Errorf("images: create %s: %w", img.Name, err)
	}
	return img, nil
}

// validate checks what a client sent, naming the field at fault.
func validate(img *api.Image) error {
	if err := api.ValidateImageName(img.Name); err != nil {
		return err
	}
	if img.Arch == "" {
		img.Arch = runtime.GOARCH
	}
	if img.Arch != runtime.GOARCH {
		return api.Errorf(api.CodeInvalid, "arch: the image is for %s, and this cloud's nodes are %s", img.Arch, runtime.GOARCH)
	}
	files := map[string]bool{}
	for i, f := range img.Files {
		if !digestRe.MatchString(f.Digest) {
			return api.Errorf(api.CodeInvalid, "files[%d].digest: %q is not sha256:<64 hex digits>", i, f.Digest)
		}
		if files[f.Name] {
			return api.Errorf(api.CodeInvalid, "files[%d].name: %s is listed twice", i, f.Name)
		}
		files[f.Name] = true
	}
	want := func(names ...string) error {
		allowed := map[string]bool{}
		for _, n := range names {
			allowed[strings.TrimSuffix(n, "?")] = true
			if !strings.HasSuffix(n, "?") && !files[n] {
				return api.Errorf(api.CodeInvalid, "files: a %s image needs a %q file", img.Type, n)
			}
		}
		for n := range files {
			if !allowed[n] {
				return api.Errorf(api.CodeInvalid, "files: a %s image has no %q file", img.Type, n)
			}
		}
		return nil
	}
	switch img.Type {
	case api.ImageContainer:
		if img.VM != nil {
			return api.Errorf(api.CodeInvalid, "vm: a container image has no vm settings")
		}
		c := img.Container
		if c == nil || (len(c.Entrypoint) == 0 && len(c.Cmd) == 0) {
			return api.Errorf(api.CodeInvalid, "container: the image has no entrypoint and no cmd: nothing to run")
		}
		return want(api.ImageFileRootfs)
	case api.ImageVM:
		if img.Container != nil {
			return api.Errorf(api.CodeInvalid, "container: a vm image has no container settings")
		}
		v := img.VM
		if v == nil {
			return api.Errorf(api.CodeInvalid, "vm: a vm image needs its boot settings")
		}
		if v.DiskFormat != "raw" && v.DiskFormat != "qcow2" {
			return api.Errorf(api.CodeInvalid, "vm.diskFormat: %q is not raw or qcow2", v.DiskFormat)
		}
		if v.DiskSize <= 0 {
			return api.Errorf(api.CodeInvalid, "vm.diskSize: must be the disk's size in bytes")
		}
		if files[api.ImageFileInitrd] && !files[api.ImageFileKernel] {
			return api.Errorf(api.CodeInvalid, "files: an initrd needs the kernel it goes with")
		}
		// Without a kernel the disk boots with its own bootloader.
		return want(api.ImageFileKernel+"?", api.ImageFileDisk, api.ImageFileInitrd+"?")
	default:
		return api.Errorf(api.CodeInvalid, "type: %q is not container or vm", img.Type)
	}
}

// imageDigest covers the files and the settings: any change makes a new digest.
func imageDigest(img api.Image) string {
	h := sha256.New()
	files := append([]api.ImageFile(nil), img.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		fmt.Fprintf(h, "%s %s %d\n", f.Name, f.Digest, f.Size)
	}
	cfg, _ := json.Marshal(struct {
		Type, Arch string
		C          *api.ContainerImageConfig
		V          *api.VMImageConfig
	}{img.Type, img.Arch, img.Container, img.VM})
	h.Write(cfg)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Key is where the state keeps a tenant's image: names are unique within
// a tenant.
func Key(tenant, name string) string { return tenant + "/" + name }

// Lookup finds the image a tenant names: its own, or else the default
// tenant's, which every tenant may use (the hoster's images).
func Lookup(st state.Store, tenant, name string) (api.Image, bool) {
	for _, key := range []string{Key(tenant, name), Key(api.DefaultTenant, name)} {
		var img api.Image
		if e, ok := st.Get(state.KindImages, key); ok && json.Unmarshal(e.Value, &img) == nil {
			return img, true
		}
	}
	return api.Image{}, false
}

// Get returns the image a tenant names (see Lookup).
func (s *Store) Get(tenant, name string) (api.Image, error) {
	img, ok := Lookup(s.st, tenant, name)
	if !ok {
		return api.Image{}, api.Errorf(api.CodeNotFound, "no image named %s", name)
	}
	return img, nil
}

// List returns the images a tenant may use, its own and the default
// tenant's (every image with api.AllTenants), by tenant and name.
func (s *Store) List(tenant string) []api.Image {
	out := []api.Image{}
	for _, e := range s.st.List(state.KindImages, "") {
		var img api.Image
		if json.Unmarshal(e.Value, &img) != nil {
			continue
		}
		if tenant == api.AllTenants || img.Tenant == tenant || img.Tenant == api.DefaultTenant {
			out = append(out, img)
		}
	}
	return out
}

// Delete removes a tenant's own image unless usedBy names services that
// run it, then the files no other image shares.
func (s *Store) Delete(ctx context.Context, tenant, name string, usedBy []string) error {
	e, ok := s.st.Get(state.KindImages, Key(tenant, name))
	if !ok {
		return api.Errorf(api.CodeNotFound, "tenant %s has no image named %s", tenant, name)
	}
	var img api.Image
	if err := json.Unmarshal(e.Value, &img); err != nil {
		return fmt.Errorf("images: decode %s: %w", name, err)
	}
	if len(usedBy) > 0 {
		return api.Errorf(api.CodeConflict, "image %s is in use by %s: delete or redeploy those first", name, strings.Join(usedBy, ", "))
	}
	if _, err := s.st.Apply(ctx, []state.Op{{Kind: state.KindImages, Key: Key(tenant, name), Delete: true}}); err != nil {
		return fmt.Errorf("images: delete %s: %w", name, err)
	}
	shared := map[string]bool{}
	for _, other := range s.List(api.AllTenants) {
		for _, f := range other.Files {
			shared[f.Digest] = true
		}
	}
	for _, f := range img.Files {
		if !shared[f.Digest] && s.blobs != nil {
			if err := s.blobs.Delete(ctx, container, fileBlob(f.Digest)); err != nil {
				s.log.Warn("image file not deleted", "image", name, "digest", f.Digest, "err", err)
			}
		}
	}
	return nil
}
