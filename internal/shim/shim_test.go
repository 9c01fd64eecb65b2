package shim

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/procstat"
)

// TestMain lets the test binary be the shim, as `weft shim DIR` is in
// production.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "weft-shim" {
		os.Exit(Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// launch starts a shim on a shell script in a new instance directory and
// returns the directory and the shim's record of the running child.
func launch(t *testing.T, script string) (string, pidInfo) {
	t.Helper()
	dir := t.TempDir()
	spec := Spec{Command: []string{"/bin/sh", "-c", script}, Dir: dir, Env: map[string]string{"PATH": "/usr/bin:/bin"}, LogMax: 1 << 20}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Launch(ctx, []string{os.Args[0], "weft-shim"}, dir, spec); err != nil {
		t.Fatal(err)
	}
	var info pidInfo
	if err := atomicfile.ReadJSON(filepath.Join(dir, pidFile), &info); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-info.Child, syscall.SIGKILL)
		syscall.Kill(info.Shim, syscall.SIGKILL)
	})
	return dir, info
}

// waitGone polls until pid no longer runs (a zombie counts as gone).
func waitGone(t *testing.T, what string, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, _, err := procstat.Stat(pid)
		if err != nil || st == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs %s after the shim got SIGTERM", what, pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSIGTERMStopsTheInstance: a shim told to stop takes its instance
// with it, the child and what the child started, even one that ignores
// SIGTERM, and records how it ended.
func TestSIGTERMStopsTheInstance(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"child and grandchild", `sleep 600 & echo $! > grandchild; echo ready; wait`},
		{"ignores SIGTERM", `trap '' TERM; (trap '' TERM; sleep 600) & echo $! > grandchild; echo ready; while :; do sleep 0.05; done`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, info := launch(t, tc.script)
			var grandchild int
			deadline := time.Now().Add(10 * time.Second)
			for grandchild == 0 {
				data, _ := os.ReadFile(filepath.Join(dir, "grandchild"))
				grandchild, _ = strconv.Atoi(strings.TrimSpace(string(data)))
				if time.Now().After(deadline) {
					t.Fatal("the instance did not start its own child")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := syscall.Kill(info.Shim, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			within := termGrace + 3*time.Second
			waitGone(t, "the instance's process", info.Child, within)
			waitGone(t, "the instance's child", grandchild, within)
			waitGone(t, "the shim", info.Shim, within)
			st, err := Inspect(dir)
			if err != nil || !st.Exited || !strings.HasPrefix(st.Reason, "stopped with its shim: killed by SIG") {
				t.Fatalf("recorded end: %+v, %v; want killed, stopped with its shim", st, err)
			}
		})
	}
}

// TestLogIsPrivate: the output log is readable by the agent's user only,
// also when an older shim left it readable by all.
func TestLogIsPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LogFile)
	if err := os.WriteFile(path, []byte("older\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := newCappedLog(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 5; i++ { // past max/2: rotated to .1
		l.Write([]byte("some output line\n"))
	}
	for _, p := range []string{path, path + ".1"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
		}
	}
}
