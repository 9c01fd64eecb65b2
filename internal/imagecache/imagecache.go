// Package imagecache keeps a node's copies of images: each image is
// downloaded once, checked against its digests, unpacked (a container
// image's root filesystem) and shared read-only by every instance of it on
// the node. An image appears in the cache whole or not at all.
package imagecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/untar"
)

// Source is where images come from: the controller (*client.Client).
type Source interface {
	// ImageByDigest returns the image an instance was deployed with.
	ImageByDigest(ctx context.Context, digest string) (api.Image, error)
	ImageFile(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Cache is a folder of images, one subfolder per image digest.
type Cache struct {
	dir    string
	src    Source
	unpack untar.Options

	mu       sync.Mutex
	inflight map[string]*fetch // by image digest
	held     map[string]int64  // bytes of unpack.Budget each image holds, by digest
}

type fetch struct {
	done chan struct{}
	err  error
}

// New returns a cache in dir. An image's root filesystem may unpack to at
// most maxBytes (0: no limit of its own), and the cache's images are charged
// to budget (nil: not counted), the images already in dir included.
func New(dir string, src Source, maxBytes int64, budget *untar.Budget) *Cache {
	c := &Cache{dir: dir, src: src, unpack: Options(maxBytes, budget), inflight: map[string]*fetch{}, held: map[string]int64{}}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			os.RemoveAll(filepath.Join(dir, e.Name())) // a fetch an earlier run left half done
			continue
		}
		if budget != nil {
			n, _ := untar.Usage(filepath.Join(dir, e.Name(), "rootfs")) // as fetch charged it
			budget.Hold(n)
			c.held["sha256:"+e.Name()] = n
		}
	}
	return c
}

// Dir returns where the image with this digest lives in the cache.
func (c *Cache) Dir(digest string) string {
	return filepath.Join(c.dir, strings.TrimPrefix(digest, "sha256:"))
}

// Ensure returns the folder of the named image, fetching it first if the node
// does not have it. digest is what the deployment pinned: an image that no
// longer has it (deleted and made again) is an error, not a silent change.
// Concurrent calls for one image share a single download.
func (c *Cache) Ensure(ctx context.Context, name, digest string) (string, error) {
	if !strings.HasPrefix(digest, "sha256:") || strings.ContainsAny(strings.TrimPrefix(digest, "sha256:"), "/.") {
		return "", fmt.Errorf("image %s: %q is not a digest", name, digest)
	}
	dir := c.Dir(digest)
	if _, err := os.Stat(filepath.Join(dir, api.ImageMetaFile)); err == nil {
		return dir, nil
	}
	c.mu.Lock()
	f, ok := c.inflight[digest]
	if !ok {
		// A fetch may have finished since the look above.
		if _, err := os.Stat(filepath.Join(dir, api.ImageMetaFile)); err == nil {
			c.mu.Unlock()
			return dir, nil
		}
		f = &fetch{done: make(chan struct{})}
		c.inflight[digest] = f
		go func() {
			// Not bound to one caller's ctx: others may be waiting for it.
			f.err = c.fetch(context.WithoutCancel(ctx), name, digest, dir)
			c.mu.Lock()
			delete(c.inflight, digest)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return dir, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (c *Cache) fetch(ctx context.Context, name, digest, dir string) error {
	img, err := c.src.ImageByDigest(ctx, digest)
	if err != nil {
		return fmt.Errorf("image %s (%s): %w", name, short(digest), err)
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(c.dir, ".fetch-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var unpacked int64 // charged to the budget: the image's once it is in place
	defer func() {
		if unpacked != 0 && c.unpack.Budget != nil {
			c.unpack.Budget.Release(unpacked)
		}
	}()
	for _, f := range img.Files {
		path := filepath.Join(tmp, f.Name)
		if err := c.download(ctx, f, path); err != nil {
			return fmt.Errorf("image %s: %w", name, err)
		}
		if f.Name == api.ImageFileRootfs {
			unpacked, err = unpackFile(path, filepath.Join(tmp, "rootfs"), c.unpack)
			if err != nil {
				return fmt.Errorf("image %s: unpack: %w", name, err)
			}
			os.Remove(path)
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(tmp, api.ImageMetaFile), img); err != nil {
		return err
	}
	os.RemoveAll(dir) // a half-removed earlier copy
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("image %s: %w", name, err)
	}
	c.hold(digest, unpacked)
	unpacked = 0
	return nil
}

// download copies one file and checks its size and digest.
func (c *Cache) download(ctx context.Context, f api.ImageFile, path string) error {
	if strings.ContainsAny(f.Name, "/\\") || f.Name == "" || f.Name[0] == '.' {
		return fmt.Errorf("file name %q is not allowed", f.Name)
	}
	rc, err := c.src.ImageFile(ctx, f.Digest)
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Name, err)
	}
	defer rc.Close()
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(rc, f.Size+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Name, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != f.Size || got != f.Digest {
		return fmt.Errorf("download %s: got %d bytes hashing to %s, want %d bytes of %s", f.Name, n, short(got), f.Size, short(f.Digest))
	}
	return nil
}

// Remove deletes an image from the cache (instances must no longer use it).
func (c *Cache) Remove(digest string) error {
	if digest == "" {
		return errors.New("imagecache: no digest")
	}
	err := os.RemoveAll(c.Dir(digest))
	c.hold(digest, 0)
	return err
}

// hold records that digest's image now holds n bytes of the budget, giving
// back what an earlier copy held.
func (c *Cache) hold(digest string, n int64) {
	c.mu.Lock()
	old := c.held[digest]
	if n == 0 {
		delete(c.held, digest)
	} else {
		c.held[digest] = n
	}
	c.mu.Unlock()
	if c.unpack.Budget != nil {
		c.unpack.Budget.Release(old)
	}
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
