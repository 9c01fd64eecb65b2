// Package powercut cuts the power under a store that does its own file
// I/O (bbolt opens, writes, syncs and maps its files itself), for the
// durability tests of the packages built on one: the store runs in a
// child process (the test binary run again) on a FUSE mount of a
// crashfs.FS, acknowledges its writes on stdout, and the test cuts the
// power after n acknowledgements and reopens the store from what the cut
// left. A kill -9 cannot show a missing sync (the page cache survives
// it); this can.
//
// The store runs in another process because a memory map of a file on
// the mount must not fault in the process serving the mount (see
// fusefs), and so that it can be killed at the cut.
package powercut

import (
	"bufio"
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

	"github.com/weftcloud/weft/internal/vfs/crashfs"
	"github.com/weftcloud/weft/internal/vfs/fusefs"
)

// Mount returns a crashfs over root, whose content counts as durable, the
// directory where a FUSE mount of it shows root, and a function that
// unmounts it (the test's end unmounts it too). It skips the test where
// this process cannot mount FUSE.
func Mount(t *testing.T, root string) (*crashfs.FS, string, func()) {
	t.Helper()
	if err := fusefs.Available(); err != nil {
		t.Skipf("skipping: a power cut of a store that does its own I/O needs a FUSE mount: %v", err)
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
	// (Start), so it runs after the writer is killed and before the mount
	// point is removed.
	t.Cleanup(unmount)
	return fs, mnt, unmount
}

// Cut starts the writer child with env (see Start), waits until it
// acknowledged n writes, cuts the power, kills the child, and returns the
// directory the cut left with what had been acknowledged before it: each
// key with its index, and the highest index.
func Cut(t *testing.T, fs *crashfs.FS, n int, env ...string) (string, map[string]uint64, uint64) {
	t.Helper()
	w := Start(t, env...)
	acked, maxIdx := w.Acks(t, n)
	img := fs.Crash()
	w.Kill()
	return img, acked, maxIdx
}

// Writer is a child process: the test binary run again with env added to
// its environment, which its TestMain sees and answers by calling Serve.
type Writer struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stdout io.Reader
	sc     *bufio.Scanner
}

// Start starts a writer child; the test's end kills it.
func Start(t *testing.T, env ...string) *Writer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("skipping: cannot find the test binary to re-execute: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
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
	w := &Writer{cmd: cmd, stdin: stdin, stdout: stdout, sc: bufio.NewScanner(stdout)}
	t.Cleanup(w.Kill)
	return w
}

// Acks reads acknowledgements until there are n, and returns the index
// each acknowledged key was given and the highest index.
func (w *Writer) Acks(t *testing.T, n int) (map[string]uint64, uint64) {
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
		t.Fatalf("child acknowledged only %d writes before it stopped", len(acked))
	}
	return acked, maxIdx
}

// Kill SIGKILLs the child and waits for it; it may be called again.
func (w *Writer) Kill() {
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

// Serve is the child's side: it runs write on each of goroutines
// goroutines over and over, as fast as the store takes them, and prints
// "key index" for each write that returned, which is what the parent
// counts as acknowledged. write gets its goroutine's number. Serve exits
// the process when stdin closes, so the child cannot outlive a parent
// that died without killing it, and with status 1 when a write fails.
func Serve(goroutines int, write func(g int) (key string, index uint64, err error)) {
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	for g := range goroutines {
		go func() {
			for {
				key, idx, err := write(g)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(out, "%s %d\n", key, idx)
				out.Flush() // a line the parent reads is a write that returned
				mu.Unlock()
			}
		}()
	}
	select {}
}
