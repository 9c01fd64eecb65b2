package imagecache_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/imagecache"
	"github.com/weftcloud/weft/internal/ociimage"
	"github.com/weftcloud/weft/internal/untar"
	"github.com/weftcloud/weft/internal/untar/untartest"
)

// TestUnpackDockerSaveLinkAttack imports a docker-save tarball whose layer
// holds a link v to a folder outside, then a folder "../v" of mode 07777,
// the way the CLI and a node do: flattened by ociimage, unpacked by
// Unpack. The outside folder keeps its mode.
func TestUnpackDockerSaveLinkAttack(t *testing.T) {
	sb := untartest.NewSandbox(t)
	img, err := ociimage.BuildLayer(untartest.Tar(untartest.ChmodThroughLink(sb.Host)...),
		api.ContainerImageConfig{Entrypoint: []string{"/bin/true"}}, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "image.tar")
	if err := ociimage.WriteDockerTarball(saved, "attack:latest", img); err != nil {
		t.Fatal(err)
	}
	flat, err := ociimage.FromArchive(saved, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(flat.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := imagecache.Unpack(f, sb.Root); err != nil {
		t.Logf("Unpack = %v", err) // refusing is fine too; touching the host is not
	}
	sb.Check(t)
	if fi, err := os.Lstat(filepath.Join(sb.Root, "v")); err == nil && fi.Mode()&os.ModeSymlink == 0 && fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("v inside the root has mode %v, want the archive's 07777 bits or the link", fi.Mode())
	}
}

// TestUnpackKeepsSetuid unpacks as root a setuid, setgid file owned by
// another user: chown clears those bits, so it must come before chmod.
func TestUnpackKeepsSetuid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("owners are only set when unpacking as root")
	}
	dir := filepath.Join(t.TempDir(), "root")
	data := untartest.Tar(
		untartest.Entry{Name: "bin/", Type: tar.TypeDir, Mode: 0o755},
		untartest.Entry{Name: "bin/su", Body: "binary", Mode: 0o6755, Uid: 1000, Gid: 1000},
		untartest.Entry{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777, Uid: 1000},
	)
	if err := imagecache.Unpack(bytes.NewReader(data), dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "bin/su"))
	if err != nil {
		t.Fatal(err)
	}
	if want := os.ModeSetuid | os.ModeSetgid | 0o755; fi.Mode() != want {
		t.Errorf("bin/su has mode %v, want %v", fi.Mode(), want)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("bin/su is owned by %d:%d, want 1000:1000", st.Uid, st.Gid)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "tmp")); fi == nil || fi.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Errorf("tmp has mode %v, want the sticky bit", fi)
	}
}

// TestUnpackRefusesHardLinkEscapes: a hard link names an entry inside the
// root, reached without following links; a hard link to a link is a link.
func TestUnpackRefusesHardLinkEscapes(t *testing.T) {
	for name, entries := range map[string][]untartest.Entry{
		"through a link": {
			{Name: "h", Type: tar.TypeSymlink, Link: "/HOST"},
			{Name: "stolen", Type: tar.TypeLink, Link: "h/file"},
		},
		"climbing out": {
			{Name: "stolen", Type: tar.TypeLink, Link: "../../../host/file"},
		},
		"to a link": {
			{Name: "l", Type: tar.TypeSymlink, Link: "/HOST/file"},
			{Name: "stolen", Type: tar.TypeLink, Link: "l"},
			{Name: "stolen", Body: "overwritten"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			sb := untartest.NewSandbox(t)
			for i := range entries {
				entries[i].Link = strings.Replace(entries[i].Link, "/HOST", sb.Host, 1)
			}
			imagecache.Unpack(bytes.NewReader(untartest.Tar(entries...)), sb.Root)
			sb.Check(t)
			var st syscall.Stat_t
			if fi, err := os.Stat(filepath.Join(sb.Host, "file")); err == nil {
				st = *fi.Sys().(*syscall.Stat_t)
			}
			if st.Nlink != 1 {
				t.Errorf("the host's file has %d links, want 1", st.Nlink)
			}
		})
	}
}

// TestCacheStopsAtTheLimits: an image that expands past the limit for one
// archive, or past the node's budget, is refused with the limit named, and
// a refused image gives its bytes back.
func TestCacheStopsAtTheLimits(t *testing.T) {
	bomb := untartest.Tar(untartest.Entry{Name: "zeros", Size: 3 << 20})
	small := untartest.Tar(untartest.Entry{Name: "app", Body: "hello", Mode: 0o755})
	src := &memSource{files: map[string][]byte{digestOf(bomb): bomb, digestOf(small): small}, images: map[string]api.Image{}}
	for name, data := range map[string][]byte{"bomb": bomb, "small": small} {
		src.images[name] = api.Image{Name: name, Type: api.ImageContainer, Digest: digestOf([]byte(name)),
			Files: []api.ImageFile{{Name: api.ImageFileRootfs, Digest: digestOf(data), Size: int64(len(data))}}}
	}
	ctx := t.Context()

	c := imagecache.New(t.TempDir(), src, 1<<20, nil)
	_, err := c.Ensure(ctx, "bomb", src.images["bomb"].Digest)
	if !errors.Is(err, untar.ErrTooLarge) || !strings.Contains(err.Error(), "1Mi, the limit for one archive") {
		t.Errorf("Ensure(bomb) = %v, want the limit for one archive named", err)
	}

	budget := untar.NewBudget(2 << 20)
	c = imagecache.New(t.TempDir(), src, 0, budget)
	_, err = c.Ensure(ctx, "bomb", src.images["bomb"].Digest)
	if !errors.Is(err, untar.ErrTooLarge) || !strings.Contains(err.Error(), "limit of 2Mi") {
		t.Errorf("Ensure(bomb) = %v, want the node's limit named", err)
	}
	if used := budget.Used(); used != 0 {
		t.Errorf("a refused image still holds %d bytes of the budget", used)
	}
	if _, err := c.Ensure(ctx, "small", src.images["small"].Digest); err != nil {
		t.Fatal(err)
	}
	if used := budget.Used(); used != untar.EntryCost+5 {
		t.Errorf("the budget holds %d bytes, want %d", used, untar.EntryCost+5)
	}
	if err := c.Remove(src.images["small"].Digest); err != nil {
		t.Fatal(err)
	}
	if used := budget.Used(); used != 0 {
		t.Errorf("a removed image still holds %d bytes of the budget", used)
	}
}
