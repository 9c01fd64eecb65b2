package imagecache_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/imagecache"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

func TestUnpack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	data := makeTar(t, []entry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/server", body: "binary", typ: tar.TypeReg, mode: 0o755},
		{name: "bin/alias", link: "server", typ: tar.TypeSymlink},
		{name: "bin/hard", link: "bin/server", typ: tar.TypeLink},
		{name: "../../escape", body: "x", typ: tar.TypeReg}, // cleaned to /escape inside the root
		{name: "dev/null", typ: tar.TypeChar},
	})
	if err := imagecache.Unpack(bytes.NewReader(data), dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bin/hard")); string(b) != "binary" {
		t.Errorf("hard link reads %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/alias")); l != "server" {
		t.Errorf("symlink points to %q", l)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/server")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/server: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape")); err != nil {
		t.Errorf("../../escape was not kept inside the root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
		t.Error("an entry escaped the root")
	}
}

func TestUnpackRefusesWritesThroughSymlinks(t *testing.T) {
	outside := t.TempDir()
	dir := filepath.Join(t.TempDir(), "root")
	data := makeTar(t, []entry{
		{name: "etc", link: outside, typ: tar.TypeSymlink},
		{name: "etc/passwd", body: "owned", typ: tar.TypeReg},
	})
	err := imagecache.Unpack(bytes.NewReader(data), dir)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Unpack = %v, want a refusal to write through a symlink", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "passwd")); err == nil {
		t.Fatal("a file was written outside the root")
	}
}

// memSource serves images from memory, counting file downloads.
type memSource struct {
	images    map[string]api.Image
	files     map[string][]byte
	downloads atomic.Int32
}

func (s *memSource) ImageByDigest(_ context.Context, digest string) (api.Image, error) {
	for _, img := range s.images {
		if img.Digest == digest {
			return img, nil
		}
	}
	return api.Image{}, fmt.Errorf("no image has digest %s", digest)
}

func (s *memSource) ImageFile(_ context.Context, digest string) (io.ReadCloser, error) {
	s.downloads.Add(1)
	return io.NopCloser(bytes.NewReader(s.files[digest])), nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestEnsureDownloadsOnceAndChecksDigests(t *testing.T) {
	rootfs := makeTar(t, []entry{{name: "app", body: "hello", typ: tar.TypeReg, mode: 0o755}})
	src := &memSource{files: map[string][]byte{digestOf(rootfs): rootfs}}
	img := api.Image{Name: "app", Type: api.ImageContainer, Digest: "sha256:" + strings.Repeat("a", 64),
		Files: []api.ImageFile{{Name: api.ImageFileRootfs, Digest: digestOf(rootfs), Size: int64(len(rootfs))}}}
	src.images = map[string]api.Image{"app": img}
	c := imagecache.New(t.TempDir(), src, 0, nil)

	var wg sync.WaitGroup
	dirs := make([]string, 5)
	errs := make([]error, 5)
	for i := range dirs {
		wg.Add(1)
		go func() { defer wg.Done(); dirs[i], errs[i] = c.Ensure(context.Background(), "app", img.Digest) }()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("Ensure %d = %q, %v", i, dirs[i], errs[i])
		}
	}
	if n := src.downloads.Load(); n != 1 {
		t.Errorf("%d downloads for 5 concurrent Ensure calls, want 1", n)
	}
	if b, _ := os.ReadFile(filepath.Join(dirs[0], "rootfs", "app")); string(b) != "hello" {
		t.Errorf("rootfs/app = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], api.ImageMetaFile)); err != nil {
		t.Error(err)
	}

	// A digest no image has, and corrupt bytes, are refused.
	if _, err := c.Ensure(context.Background(), "app", "sha256:"+strings.Repeat("b", 64)); err == nil || !strings.Contains(err.Error(), "no image has digest") {
		t.Errorf("Ensure with a stale digest = %v", err)
	}
	bad := img
	bad.Name, bad.Digest = "bad", "sha256:"+strings.Repeat("c", 64)
	bad.Files = []api.ImageFile{{Name: api.ImageFileRootfs, Digest: digestOf([]byte("other")), Size: int64(len(rootfs))}}
	src.images["bad"] = bad
	src.files[bad.Files[0].Digest] = rootfs
	if _, err := c.Ensure(context.Background(), "bad", bad.Digest); err == nil || !strings.Contains(err.Error(), "hashing to") {
		t.Errorf("Ensure of corrupt bytes = %v", err)
	}
	if _, err := os.Stat(c.Dir(bad.Digest)); err == nil {
		t.Error("a corrupt image was left in the cache")
	}
}
