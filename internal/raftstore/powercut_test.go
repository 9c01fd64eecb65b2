package raftstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/vfs/crashfs"
	"github.com/weftcloud/weft/internal/vfs/powercut"
)

// childEnv switches the test binary into the writer child of the power
// cut tests; its value is the server's data directory.
const childEnv = "WEFT_RAFTSTORE_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// childWriters is how many goroutines of the child apply batches.
const childWriters = 4

// localConfig is a one-server cluster in dir that listens nowhere, as
// `weft dev` runs one.
func localConfig(dir string) Config {
	return Config{NodeID: "n1", BindAddr: "127.0.0.1:1", DataDir: dir, Local: true, Bootstrap: true, Logger: testLogger()}
}

// openLocal opens the server in dir and waits until it leads.
func openLocal(dir string) (*Store, error) {
	s, err := Open(localConfig(dir))
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); !s.IsLeader(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("%s: no leader after 10s", dir)
		}
	}
	return s, nil
}

// runChild applies batches through Raft from several goroutines as fast
// as it can, acknowledging each (powercut.Serve); each goroutine numbers
// its keys on from those the store already holds.
func runChild(dir string) int {
	s, err := openLocal(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	next := make([]int, childWriters)
	for w := range next {
		next[w] = len(s.List(state.KindInstances, fmt.Sprintf("w%d/", w)))
	}
	powercut.Serve(childWriters, func(w int) (string, uint64, error) {
		i := next[w]
		next[w]++
		key := fmt.Sprintf("w%d/%08d", w, i)
		idx, err := s.Apply(context.Background(), []state.Op{
			{Kind: state.KindInstances, Key: key, Value: []byte(strconv.Quote(key))},
			{Kind: state.KindMeta, Key: "last-" + strconv.Itoa(w), Value: []byte(strconv.Itoa(i))},
		})
		return key, idx, err
	})
	return 0
}

// cut runs the writer child on the server in mnt/data until it
// acknowledged n batches and cuts the power under it.
func cut(t *testing.T, fs *crashfs.FS, mnt string, n int) (string, map[string]uint64, uint64) {
	t.Helper()
	return powercut.Cut(t, fs, n, childEnv+"="+filepath.Join(mnt, "data"))
}

// lost reopens the server in dir (the cut's image, on the real disk) and
// lists the acknowledged batches it does not hold, and checks that it
// took up at least the highest acknowledged index.
func lost(t *testing.T, dir string, acked map[string]uint64, maxIdx uint64) []string {
	t.Helper()
	// The log itself survived, not only the state applied from it: a
	// server without raft.db would adopt state.db into a new log, which
	// in a cluster of several loses the votes it cast.
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		t.Errorf("the log did not survive the cut: %v", err)
	}
	s, err := openLocal(dir)
	if err != nil {
		t.Fatalf("reopen after the cut: %v", err)
	}
	defer s.Close()
	var missing []string
	for key, idx := range acked {
		e, ok := s.Get(state.KindInstances, key)
		if !ok || e.Rev != idx || string(e.Value) != strconv.Quote(key) {
			missing = append(missing, fmt.Sprintf("%s at index %d (got %+v, %v)", key, idx, e, ok))
		}
	}
	if len(missing) > 0 {
		return missing
	}
	if s.Index() < maxIdx {
		t.Errorf("Index = %d, below the highest acknowledged %d", s.Index(), maxIdx)
	}
	if last, err := s.logs.LastIndex(); err != nil || last < maxIdx {
		t.Errorf("raft.db's last index = %d (%v), below the highest acknowledged %d", last, err, maxIdx)
	}
	return nil
}

// TestPowerCut cuts the power under a server (its Raft log in raft.db,
// its state in state.db, both bbolt, through FUSE onto crashfs) while
// four writers apply batches, and reopens it from what the cut left:
// every batch acknowledged before the cut is there. The first round
// starts on an empty folder, so the data folder's and the files' names
// must be durable too; the second reopens what the first cut left.
func TestPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: FUSE mounts and child processes (-short)")
	}
	root := t.TempDir()
	all := map[string]uint64{}
	var maxIdx uint64
	for round := range 2 {
		fs, mnt, unmount := powercut.Mount(t, root)
		img, acked, idx := cut(t, fs, mnt, 150)
		unmount()
		for k, v := range acked {
			all[k] = v
		}
		maxIdx = max(maxIdx, idx)
		root = img
		if missing := lost(t, filepath.Join(root, "data"), all, maxIdx); len(missing) > 0 {
			t.Fatalf("round %d: %d of %d acknowledged batches lost: %v", round, len(missing), len(all), missing[:min(len(missing), 5)])
		}
		t.Logf("round %d: %d acknowledged batches (max index %d) there", round, len(all), maxIdx)
	}
}

// TestPowerCutCatchesAMissingSync shows that TestPowerCut can fail: with
// the syncs of raft.db and state.db made to do nothing, the cut loses
// acknowledged batches.
func TestPowerCutCatchesAMissingSync(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: FUSE mounts and child processes (-short)")
	}
	root := t.TempDir()
	// A first run makes the server, its folder and files durable, so that
	// what the second loses is the entries.
	fs, mnt, unmount := powercut.Mount(t, root)
	img, _, _ := cut(t, fs, mnt, 10)
	unmount()
	fs, mnt, _ = powercut.Mount(t, img)
	fs.IgnoreSyncs(func(p string) bool { b := filepath.Base(p); return b == "raft.db" || b == "state.db" })
	img, acked, maxIdx := cut(t, fs, mnt, 150)
	missing := lost(t, filepath.Join(img, "data"), acked, maxIdx)
	if len(missing) == 0 {
		t.Fatal("no acknowledged batch lost with the syncs of raft.db and state.db ignored: the power-cut test cannot fail")
	}
	t.Logf("with their syncs ignored, %d of %d acknowledged batches lost", len(missing), len(acked))
}
