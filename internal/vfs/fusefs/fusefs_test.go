package fusefs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/vfs"
	"github.com/weftcloud/weft/internal/vfs/crashfs"
	"github.com/weftcloud/weft/internal/vfs/fusefs"
)

// mount serves root of fsys on a new directory until the test ends.
func mount(t *testing.T, fsys vfs.FS, root string) string {
	t.Helper()
	if err := fusefs.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	mnt := t.TempDir()
	srv, err := fusefs.Mount(mnt, fsys, root)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir's cleanup, so it runs before it.
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Error(err)
		}
		if out, err := exec.Command("mountpoint", "-q", mnt).CombinedOutput(); err == nil {
			t.Errorf("%s is still a mount point after Unmount %s", mnt, out)
		}
	})
	return mnt
}

func writeFile(t *testing.T, path, data string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Fatalf("fdatasync %s: %v", path, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOperations does each operation through the mount and checks it on
// the directory below, and the other way round.
func TestOperations(t *testing.T) {
	root := t.TempDir()
	mnt := mount(t, vfs.OS, root)
	in := func(name string) string { return filepath.Join(mnt, name) }
	below := func(name string) string { return filepath.Join(root, name) }

	writeFile(t, in("a"), "hello", true)
	if got := readFile(t, below("a")); got != "hello" {
		t.Errorf("a below the mount = %q, want hello", got)
	}
	if got := readFile(t, in("a")); got != "hello" {
		t.Errorf("a through the mount = %q, want hello", got)
	}

	// Writes at offsets, growth, and a truncate, on one descriptor.
	f, err := os.OpenFile(in("a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("J"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("!"), 9); err != nil {
		t.Fatal(err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 10 {
		t.Errorf("size after a write at 9 = %v, %v; want 10", st.Size(), err)
	}
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, below("a")); got != "Jell" {
		t.Errorf("a after writes and truncate = %q, want Jell", got)
	}
	// A change below shows through the mount at once (no cached
	// attributes or pages).
	if err := os.WriteFile(below("a"), []byte("changed below"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, in("a")); got != "changed below" {
		t.Errorf("a through the mount after a change below = %q", got)
	}

	if err := os.Mkdir(in("d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(in("d"), 0o700); !os.IsExist(err) {
		t.Errorf("second mkdir of d: %v, want it to exist", err)
	}
	if err := os.Rename(in("a"), in("d/b")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, below("d/b")); got != "changed below" {
		t.Errorf("d/b below after the rename = %q", got)
	}
	if _, err := os.Stat(in("a")); !os.IsNotExist(err) {
		t.Errorf("a after its rename: %v, want it gone", err)
	}
	writeFile(t, in("c"), "", false)
	d, err := os.Open(in("d"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Errorf("fsync of a directory: %v", err)
	}
	d.Close()

	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"c", "d"}; !slices.Equal(names, want) {
		t.Errorf("readdir = %v, want %v", names, want)
	}
	if err := os.Remove(in("c")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(in("d")); err == nil {
		t.Error("removed a directory that is not empty")
	}
	if err := os.RemoveAll(in("d")); err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 0 {
		t.Errorf("root after removing everything: %v, %v", ents, err)
	}
}

// TestSyncsReachTheFS checks that fsync and fdatasync of a file, and
// fsync of a directory, through the mount are the FS's syncs: a crashfs
// power cut keeps what was synced and loses the rest.
func TestSyncsReachTheFS(t *testing.T) {
	root := t.TempDir()
	cfs := crashfs.New(t, root)
	mnt := mount(t, cfs, root)

	writeFile(t, filepath.Join(mnt, "synced"), "durable", true)
	writeFile(t, filepath.Join(mnt, "unsynced"), "lost", false)
	d, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	writeFile(t, filepath.Join(mnt, "nodirsync"), "name lost", true)

	img := cfs.Crash()
	for name, want := range map[string]string{"synced": "durable", "unsynced": ""} {
		if got := readFile(t, filepath.Join(img, name)); got != want {
			t.Errorf("%s after a power cut = %q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(img, "nodirsync")); !os.IsNotExist(err) {
		t.Errorf("nodirsync survived a power cut without a directory sync: %v", err)
	}
}
