package state

import (
	"maps"
	"path/filepath"
	"testing"

	"github.com/weftcloud/weft/internal/vfs/crashfs"
	"github.com/weftcloud/weft/internal/vfs/powercut"
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

// cut runs the writer child on root/state.db through a FUSE mount of fs
// until it acknowledged n batches, and cuts the power (powercut.Cut).
func cut(t *testing.T, fs *crashfs.FS, mnt string, n int) (string, map[string]uint64, uint64) {
	t.Helper()
	return powercut.Cut(t, fs, n, childEnv+"="+filepath.Join(mnt, "state.db"))
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
		fs, mnt, unmount := powercut.Mount(t, root)
		img, acked, idx := cut(t, fs, mnt, 200)
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
	fs, mnt, _ := powercut.Mount(t, newDB(t))
	fs.IgnoreSyncs(func(p string) bool { return filepath.Base(p) == "state.db" })
	img, acked, _ := cut(t, fs, mnt, 200)
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
	fs, mnt, _ := powercut.Mount(t, t.TempDir())
	img, acked, maxIdx := cut(t, fs, mnt, 50)
	checkAcked(t, filepath.Join(img, "state.db"), acked, maxIdx)
}
