package state

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/weftcloud/weft/internal/vfs/powercut"
)

// childEnv switches the test binary into the writer child of the
// durability tests; its value is the database path.
const childEnv = "WEFT_STATE_TEST_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

// childWriters is how many goroutines of the child apply batches.
const childWriters = 4

// runChild applies batches from several goroutines as fast as it can and
// acknowledges each (powercut.Serve). Each goroutine numbers its keys on
// from those the store already holds (read back at Open), so that a run
// on a database an earlier run left adds new keys.
func runChild(path string) int {
	db, err := Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	next := make([]int, childWriters)
	for w := range next {
		next[w] = len(db.List(KindInstances, fmt.Sprintf("w%d/", w)))
	}
	powercut.Serve(childWriters, func(w int) (string, uint64, error) {
		i := next[w]
		next[w]++
		key := fmt.Sprintf("w%d/%08d", w, i)
		idx, err := db.Apply(context.Background(), []Op{
			{Kind: KindInstances, Key: key, Value: []byte(strconv.Quote(key))},
			// A second kind in the same batch: both or neither must survive.
			{Kind: KindMeta, Key: "last-" + strconv.Itoa(w), Value: []byte(strconv.Itoa(i))},
		})
		return key, idx, err
	})
	return 0
}

// lostBatches opens the store at path and lists the acknowledged batches
// it does not hold.
func lostBatches(t *testing.T, path string, acked map[string]uint64) []string {
	t.Helper()
	db, err := Open(path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	var lost []string
	for key, idx := range acked {
		e, ok := db.Get(KindInstances, key)
		if !ok || e.Rev != idx || string(e.Value) != strconv.Quote(key) {
			lost = append(lost, fmt.Sprintf("%s at index %d (got %+v, %v)", key, idx, e, ok))
		}
	}
	return lost
}

// checkAcked fails t unless the store at path holds every acknowledged
// batch, whole, and an index at least the highest acknowledged.
func checkAcked(t *testing.T, path string, acked map[string]uint64, maxIdx uint64) {
	t.Helper()
	if lost := lostBatches(t, path, acked); len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged batches lost: %v", len(lost), len(acked), lost[:min(len(lost), 5)])
	}
	db, err := Open(path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if db.Index() < maxIdx {
		t.Errorf("Index = %d, below the highest acknowledged %d", db.Index(), maxIdx)
	}
	// Every surviving batch is whole: the meta counter of each writer is at
	// least its highest surviving key.
	for w := range childWriters {
		rows := db.List(KindInstances, fmt.Sprintf("w%d/", w))
		if len(rows) == 0 {
			continue
		}
		last, _ := db.Get(KindMeta, "last-"+strconv.Itoa(w))
		n, _ := strconv.Atoi(string(last.Value))
		if want := fmt.Sprintf("w%d/%08d", w, n); want != rows[len(rows)-1].Key {
			t.Errorf("writer %d: last key %s but meta says %s", w, rows[len(rows)-1].Key, want)
		}
	}
	t.Logf("%d acknowledged batches (max index %d) there; store index %d", len(acked), maxIdx, db.Index())
}

// TestDurabilityAfterKill runs a writer in a child process, SIGKILLs it in
// the middle of writing and checks that every batch it acknowledged is in
// the reopened store. The page cache survives a kill, so this cannot see
// a missing fsync: TestPowerCut does.
func TestDurabilityAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: starts a child process and fsyncs for a few seconds (-short)")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	w := powercut.Start(t, childEnv+"="+path)
	acked, maxIdx := w.Acks(t, 400)
	w.Kill()
	checkAcked(t, path, acked, maxIdx)
}
