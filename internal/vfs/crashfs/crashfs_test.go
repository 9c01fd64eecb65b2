package crashfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/weftcloud/weft/internal/vfs"
	"github.com/weftcloud/weft/internal/vfs/crashfs"
)

func write(t *testing.T, fs vfs.FS, path string, flag int, data string, sync bool) {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_WRONLY|flag, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := vfs.Datasync(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// content returns the file's content, or "<none>" when it does not exist.
func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCrash checks each rule of what a power cut keeps.
func TestCrash(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "old"), []byte("before"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := crashfs.New(t, root)
	p := func(name string) string { return filepath.Join(root, name) }

	write(t, fs, p("synced"), os.O_CREATE, "durable", true)
	write(t, fs, p("synced"), os.O_APPEND, " lost", false)
	write(t, fs, p("unsynced"), os.O_CREATE, "data", false)
	if err := fs.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	write(t, fs, p("nodirsync"), os.O_CREATE, "synced data, unsynced name", true)
	// An old file rewritten in place and renamed without a directory sync.
	write(t, fs, p("old"), os.O_TRUNC, "after", true)
	if err := fs.Rename(p("old"), p("renamed")); err != nil {
		t.Fatal(err)
	}
	// A file removed without a directory sync comes back.
	if err := fs.Remove(p("unsynced")); err != nil {
		t.Fatal(err)
	}
	// A directory whose parent was not synced is lost with its files.
	if err := fs.MkdirAll(p("sub/dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, fs, p("sub/dir/f"), os.O_CREATE, "x", true)
	if err := fs.SyncDir(p("sub/dir")); err != nil {
		t.Fatal(err)
	}
	// A file written around the FS is taken as it is.
	if err := os.WriteFile(p("outside"), []byte("as is"), 0o600); err != nil {
		t.Fatal(err)
	}

	img := fs.Crash()
	q := func(name string) string { return filepath.Join(img, name) }
	for name, want := range map[string]string{
		"synced":    "durable",
		"unsynced":  "", // its name was synced, its data not
		"nodirsync": "<none>",
		"old":       "after",
		"renamed":   "<none>",
		"sub":       "<none>",
		"outside":   "as is",
	} {
		if name == "sub" {
			if _, err := os.Stat(q(name)); err == nil {
				t.Errorf("directory sub survived without a sync of its parent")
			}
			continue
		}
		if got := content(t, q(name)); got != want {
			t.Errorf("%s after the crash = %q, want %q", name, got, want)
		}
	}
	// The FS goes on: the cut store may still write, not into the image.
	write(t, fs, p("synced"), os.O_TRUNC, "later", true)
	if got := content(t, q("synced")); got != "durable" {
		t.Errorf("image changed after the crash: %q", got)
	}
}

func TestIgnoreSyncs(t *testing.T) {
	root := t.TempDir()
	fs := crashfs.New(t, root)
	if err := fs.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	fs.IgnoreSyncs(func(path string) bool { return filepath.Base(path) == "a" })
	write(t, fs, filepath.Join(root, "a"), os.O_CREATE, "ignored", true)
	write(t, fs, filepath.Join(root, "b"), os.O_CREATE, "kept", true)
	if err := fs.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	img := fs.Crash()
	if got := content(t, filepath.Join(img, "a")); got != "" {
		t.Errorf("a = %q, want its sync ignored", got)
	}
	if got := content(t, filepath.Join(img, "b")); got != "kept" {
		t.Errorf("b = %q, want kept", got)
	}
}

func TestFull(t *testing.T) {
	root := t.TempDir()
	fs := crashfs.New(t, root)
	f, err := fs.OpenFile(filepath.Join(root, "f"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := vfs.Allocate(f, 0, 100); err != nil {
		t.Fatal(err)
	}
	fs.SetFull(true)
	if _, err := f.WriteAt(make([]byte, 50), 50); err != nil {
		t.Errorf("write inside allocated space on a full disk: %v", err)
	}
	if _, err := f.WriteAt(make([]byte, 50), 80); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write past allocated space on a full disk: %v, want ENOSPC", err)
	}
	fs.SetFull(false)
	if _, err := f.WriteAt(make([]byte, 50), 80); err != nil {
		t.Errorf("write once space is back: %v", err)
	}
}
