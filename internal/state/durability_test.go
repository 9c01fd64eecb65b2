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

// childEnv switches the test binary into the writer child of
// TestDurabilityAfterKill; its value is the database path.
const childEnv = "WEFT_STATE_TEST_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

// runChild applies batches from several goroutines as fast as it can and
// prints "key index" for each acknowledged one. It exits when its stdin
// closes, so it cannot outlive a parent that died without killing it.
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
	const writers = 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
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

// TestDurabilityAfterKill runs a writer in a child process, SIGKILLs it in
// the middle of writing and checks that every batch it acknowledged is in
// the reopened store.
func TestDurabilityAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: starts a child process and fsyncs for a few seconds (-short)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("skipping: cannot find the test binary to re-execute: %v", err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	const want = 400
	acked := make(map[string]uint64)
	var maxIdx uint64
	sc := bufio.NewScanner(stdout)
	for len(acked) < want && sc.Scan() {
		key, idxText, ok := strings.Cut(sc.Text(), " ")
		idx, err := strconv.ParseUint(idxText, 10, 64)
		if !ok || err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		acked[key] = idx
		maxIdx = max(maxIdx, idx)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Everything after the kill may or may not be durable; drain the pipe
	// so Wait returns.
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if len(acked) < want {
		t.Fatalf("child acknowledged only %d batches before it stopped", len(acked))
	}

	db, err := Open(path, nil)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	if db.Index() < maxIdx {
		t.Errorf("Index after kill = %d, below the highest acknowledged %d", db.Index(), maxIdx)
	}
	lost := 0
	for key, idx := range acked {
		e, ok := db.Get(KindInstances, key)
		if !ok || e.Rev != idx || string(e.Value) != strconv.Quote(key) {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged batch %s at index %d: got %+v, %v", key, idx, e, ok)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged batches lost", lost, len(acked))
	}
	// Every surviving batch is whole: the meta counter of each writer is at
	// least its highest surviving key.
	for w := range 4 {
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
	t.Logf("%d acknowledged batches (max index %d) survived SIGKILL; store index %d", len(acked), maxIdx, db.Index())
}
