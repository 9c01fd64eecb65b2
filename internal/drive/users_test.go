package drive

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUsersNamesWhoHoldsAMount: a process with a file open under a mount,
// and one in a mount namespace of its own that still mounts it, are named;
// with neither, nobody is.
func TestUsersNamesWhoHoldsAMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("the test needs unshare (apt-get install util-linux)")
	}
	dir := t.TempDir()
	if err := unix.Mount("weft-users-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	dev := deviceOf(dir)
	if dev == "" {
		t.Fatal("no device for the mount")
	}
	if u := users(dir, "", dev); u != "" {
		t.Errorf("users of a mount nobody uses: %s", u)
	}

	f, err := os.Create(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	want := fmt.Sprintf("pid %d (%s) has %s open", os.Getpid(), strings.TrimSpace(string(comm)), f.Name())
	if u := users(dir, "", dev); !strings.Contains(u, want) {
		t.Errorf("users with a file open: %q, want %q", u, want)
	}
	f.Close()

	// A private copy of every mount, made while dir was mounted.
	sleeper := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	want = fmt.Sprintf("pid %d (sleep) mounts it at %s in a mount namespace of its own", sleeper.Process.Pid, dir)
	var u string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if u = users(dir, "", dev); strings.Contains(u, want) {
			return
		}
	}
	t.Errorf("users with a copy in another mount namespace: %q, want %q", u, want)
}
