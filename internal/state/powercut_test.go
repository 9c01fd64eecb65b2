package state

import (
	"maps"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/weftcloud/weft/internal/vfs/crashfs"
	"github.com/weftcloud/weft/internal/vfs/fusefs"
)

// newDB makes an empty database, state.db, in a new directory, which it
// returns.
func newDB(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	db, err := Open(filepath.Join(root, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

// cutMount returns a crashfs over root, whose content counts as durable,
// the path of root's state.db through a FUSE mount of that FS (bbolt does
// its own file I/O, which crashfs sees only through the mount), and a
// function that unmounts it; the test's end unmounts it too.
func cutMount(t *testing.T, root string) (*crashfs.FS, string, func()) {
	t.Helper()
	if err := fusefs.Available(); err != nil {
		t.Skipf("skipping: a power cut of bbolt needs a FUSE mount: %v", err)
	}
	fs := crashfs.New(t, root)
	mnt := t.TempDir()
	srv, err := fusefs.Mount(mnt, fs, root)
	if err != nil {
		t.Fatal(err)
	}
	unmount := func() {
		if err := srv.Unmount(); err != nil {
			t.Error(err)
		}
		if exec.Command("mountpoint", "-q", mnt).Run() == nil {
			t.Errorf("%s is still a mount point after Unmount", mnt)
		}
	}
	// Registered after the directories' cleanups and before the writer's
	// (startWriter), so it runs after the writer is killed and before the
	// mount point is removed.
	t.Cleanup(unmount)
	return fs, filepath.Join(mnt, "state.db"), unmount
}

// powerCut runs the writer child on path until it acknowledged n batches,
// cuts the power, kills the child, and returns the directory the cut left
// with what had been acknowledged before it.
func powerCut(t *testing.T, fs *crashfs.FS, path string, n int) (string, map[string]uint64, uint64) {
	t.Helper()
	w := startWriter(t, path)
	acked, maxIdx := w.acks(t, n)
	img := fs.Crash()
	w.kill()
	return img, acked, maxIdx
}

// TestPowerCut cuts the power under four writers applying batches to the
// store (bbolt: pwrite, fdatasync, file growth, a read-only memory map,
// all through FUSE onto crashfs) and reopens the store from what the cut
// left: every batch acknowledged before the cut is there, whole. Three
// times in a row: each round's writer opens what the last cut left
// through the mount, reading it back through the map.
func TestPowerCut(t *testing.T) {
	root := newDB(t)
	all := map[string]uint64{}
	var maxIdx uint64
	for round := range 3 {
		fs, path, unmount := cutMount(t, root)
		img, acked, idx := powerCut(t, fs, path, 200)
		unmount()
		maps.Copy(all, acked)
		maxIdx = max(maxIdx, idx)
		root = img
		t.Logf("round %d:", round)
		checkAcked(t, filepath.Join(root, "state.db"), all, maxIdx)
	}
}

// TestPowerCutCatchesAMissingSync shows that TestPowerCut can fail: with
// the syncs of the database file made to do nothing, the cut loses
// acknowledged batches. A kill -9 test passes the same way with or
// without them.
func TestPowerCutCatchesAMissingSync(t *testing.T) {
	fs, path, _ := cutMount(t, newDB(t))
	fs.IgnoreSyncs(func(p string) bool { return filepath.Base(p) == "state.db" })
	img, acked, _ := powerCut(t, fs, path, 200)
	lost := lostBatches(t, filepath.Join(img, "state.db"), acked)
	if len(lost) == 0 {
		t.Fatal("no acknowledged batch lost with the fdatasync of state.db ignored: the power-cut test cannot fail")
	}
	t.Logf("with its syncs ignored, %d of %d acknowledged batches lost", len(lost), len(acked))
}

// TestPowerCutOfANewDatabase cuts the power under the first writes to a
// database Open created: its name in the directory must be durable too,
// which bbolt does not see to (Open syncs the directory).
func TestPowerCutOfANewDatabase(t *testing.T) {
	fs, path, _ := cutMount(t, t.TempDir())
	img, acked, maxIdx := powerCut(t, fs, path, 50)
	checkAcked(t, filepath.Join(img, "state.db"), acked, maxIdx)
}
