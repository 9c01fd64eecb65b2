package state

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
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
// prints "key index" for each acknowledged one. Each goroutine numbers its
// keys on from those the store already holds (read back at Open), so that
// a run on a database an earlier run left adds new keys. It exits when its
// stdin closes, so it cannot outlive a parent that died without killing it.
func runChild(path string) int {
	db, err := Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range childWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := len(db.List(KindInstances, fmt.Sprintf("w%d/", w))); ; i++ {
				key := fmt.Sprintf("w%d/%08d", w, i)
				idx, err := db.Apply(context.Background(), []Op{
					{Kind: KindInstances, Key: key, Value: []byte(strconv.Quote(key))},
					// A second kind in the same batch: both or neither must survive.
					{Kind: KindMeta, Key: "last-" + strconv.Itoa(w), Value: []byte(strconv.Itoa(i))},
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(out, "%s %d\n", key, idx)
				out.Flush() // an acknowledgement the parent reads is one Apply returned
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return 0
}

// writer is a child process running runChild on a database. The store
// runs in a process of its own so that it can be killed, and so that a
// test serving its file system over FUSE (powercut_test.go) is not the
// process whose memory map faults on the mount.
type writer struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stdout io.Reader
	sc     *bufio.Scanner
}

func startWriter(t *testing.T, path string) *writer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("skipping: cannot find the test binary to re-execute: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &writer{cmd: cmd, stdin: stdin, stdout: stdout, sc: bufio.NewScanner(stdout)}
	t.Cleanup(w.kill)
	return w
}

// acks reads acknowledgements until there are n, and returns the index
// each acknowledged key was given and the highest index.
func (w *writer) acks(t *testing.T, n int) (map[string]uint64, uint64) {
	t.Helper()
	acked := make(map[string]uint64)
	var maxIdx uint64
	for len(acked) < n && w.sc.Scan() {
		key, idxText, ok := strings.Cut(w.sc.Text(), " ")
		idx, err := strconv.ParseUint(idxText, 10, 64)
		if !ok || err != nil {
			t.Fatalf("child printed %q", w.sc.Text())
		}
		acked[key] = idx
		maxIdx = max(maxIdx, idx)
	}
	if len(acked) < n {
		t.Fatalf("child acknowledged only %d batches before it stopped", len(acked))
	}
	return acked, maxIdx
}

// kill SIGKILLs the child and waits for it; it may be called again.
func (w *writer) kill() {
	if w.cmd.ProcessState != nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGKILL)
	w.stdin.Close()
	// Everything after the kill may or may not be durable; drain the pipe
	// so Wait returns.
	io.Copy(io.Discard, w.stdout)
	w.cmd.Wait()
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
	w := startWriter(t, path)
	acked, maxIdx := w.acks(t, 400)
	w.kill()
	checkAcked(t, path, acked, maxIdx)
}
