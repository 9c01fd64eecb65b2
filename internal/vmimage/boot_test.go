package vmimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/guest"
)

// requireBuildTools skips the test unless the host can build and boot images.
func requireBuildTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and boots a VM image: skipped with -short")
	}
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "mkfs.ext4", DefaultQEMU} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install qemu-system-x86 e2fsprogs): %v", tool, err)
		}
	}
}

// testCacheDir keeps downloaded packages between test runs.
func testCacheDir(t *testing.T) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "weft", "debs")
}

// buildGuestBinary builds testdata/guestmain, the guest agent alone, static,
// once per test binary (a go build costs seconds of CPU) with make build's
// settings (CGO_ENABLED=0, -trimpath: the two share compiled packages), and
// copies it to dir/weft.
func buildGuestBinary(t *testing.T, dir string) string {
	t.Helper()
	guestBin.once.Do(func() {
		guestBin.dir, guestBin.err = os.MkdirTemp("", "vmimage-guest")
		if guestBin.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(guestBin.dir, "weft"), "./testdata/guestmain")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			guestBin.err = fmt.Errorf("build guest binary: %v\n%s", err, b)
		}
	})
	if guestBin.err != nil {
		t.Fatal(guestBin.err)
	}
	out := filepath.Join(dir, "weft")
	if b, err := exec.Command("cp", filepath.Join(guestBin.dir, "weft"), out).CombinedOutput(); err != nil {
		t.Fatalf("copy the guest binary: %v: %s", err, b)
	}
	return out
}

// guestBin is the guest binary buildGuestBinary built; TestMain removes it.
var guestBin struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if guestBin.dir != "" {
		os.RemoveAll(guestBin.dir)
	}
	os.Exit(code)
}

// testLogger sends slog output to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestBuildAndBoot(t *testing.T) {
	requireBuildTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Unix socket paths are limited to 108 bytes: keep them short.
	dir, err := os.MkdirTemp("", "vmimage")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	start := time.Now()
	var progress strings.Builder
	res, err := Build(ctx, Options{
		WorkDir:    filepath.Join(dir, "work"),
		CacheDir:   testCacheDir(t),
		WeftBinary: buildGuestBinary(t, dir),
		Log:        testLogger(t),
		Progress:   &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Progress is for people: a line per step, no log records.
	t.Logf("progress:\n%s", progress.String())
	for _, want := range []string{"busybox-static ", "writing the initrd (busybox, the weft guest agent and ", "writing the 256 MiB disk\n", "built in "} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	if strings.Contains(progress.String(), "level=") || strings.Contains(progress.String(), "msg=") {
		t.Errorf("progress has log records:\n%s", progress.String())
	}
	t.Logf("built in %v: %+v", time.Since(start).Round(time.Millisecond), res)
	for _, f := range []string{res.Kernel, res.Initrd, res.Disk} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", filepath.Base(f), st.Size())
	}

	// A free host port to forward to the guest's port 8080.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	agentSock := filepath.Join(dir, "agent.sock")
	consoleLog := filepath.Join(dir, "console.log")
	argv := QEMUCommand(BootOptions{
		Kernel: res.Kernel, Initrd: res.Initrd, Disk: res.Disk, Cmdline: res.Cmdline + " weft.hostname=vmtest",
		MemoryMB: 256, CPUs: 1,
		AgentSocket: agentSock, ConsoleLog: consoleLog, QMPSocket: filepath.Join(dir, "qmp.sock"),
		HostFwd:  []string{fmt.Sprintf("tcp:127.0.0.1:%d-:8080", hostPort)},
		NoReboot: true,
	})
	t.Logf("qemu: %s", strings.Join(argv, " "))
	qemu := exec.Command(argv[0], argv[1:]...)
	var qemuOut bytes.Buffer
	qemu.Stdout, qemu.Stderr = &qemuOut, &qemuOut
	bootStart := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- qemu.Wait() }()
	defer func() {
		qemu.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(consoleLog)
			t.Logf("console:\n%s\nqemu:\n%s", b, qemuOut.String())
		}
	}()

	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	c, err := guest.Dial(dctx, agentSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello, err := c.Ready(dctx)
	if err != nil {
		t.Fatal(err)
	}
	ready := time.Since(bootStart)
	t.Logf("boot to ready: %v (guest says %v since its boot); hello %+v", ready.Round(time.Millisecond), hello.SinceBoot, hello)
	if hello.Hostname != "vmtest" {
		t.Errorf("hostname %q, want vmtest (from weft.hostname=)", hello.Hostname)
	}

	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	var out, errOut bytes.Buffer
	code, err := c.Exec(rctx, []string{"cat", "/proc/uptime"}, nil, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("exec cat /proc/uptime: code %d, %v, stderr %q", code, err, errOut.String())
	}
	up, err := strconv.ParseFloat(strings.Fields(out.String())[0], 64)
	if err != nil || up <= 0 {
		t.Errorf("/proc/uptime says %q", out.String())
	}

	out.Reset()
	code, err = c.Exec(rctx, []string{"sh", "-c", "echo persisted > /root/marker && mount | grep ' / ' && ip -4 addr show eth0"}, nil, &out, &errOut)
	t.Logf("exec: code %d err %v\n%s%s", code, err, out.String(), errOut.String())
	if err != nil || code != 0 {
		t.Fatalf("write marker: code %d, %v", code, err)
	}
	if !strings.Contains(out.String(), "10.0.2.15") {
		t.Errorf("eth0 has no 10.0.2.15: %s", out.String())
	}
	// User-mode networking forwards a host port into the guest. busybox
	// httpd daemonizes: its orphan is PID 1's to reap.
	if code, err := c.Exec(rctx, []string{"httpd", "-p", "8080", "-h", "/etc"}, nil, nil, &errOut); err != nil || code != 0 {
		t.Fatalf("start httpd: code %d, %v, %s", code, err, errOut.String())
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hostname", hostPort))
	if err != nil {
		t.Fatalf("GET through hostfwd: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "weft\n" {
		t.Errorf("GET /hostname through hostfwd: %s %q, want 200 \"weft\\n\"", resp.Status, body)
	}

	// Orphans that exit are reaped: no zombies stay behind.
	if code, err := c.Exec(rctx, []string{"sh", "-c", "sleep 0.2 & exit 0"}, nil, nil, nil); err != nil || code != 0 {
		t.Fatalf("orphan: code %d, %v", code, err)
	}
	time.Sleep(700 * time.Millisecond)
	out.Reset()
	if _, err := c.Exec(rctx, []string{"ps", "-o", "pid,ppid,stat,comm"}, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[2], "Z") {
			t.Errorf("zombie in the guest: %s\n%s", l, out.String())
		}
	}

	if err := c.SetTime(rctx, time.Now()); err != nil {
		t.Fatal(err)
	}

	// The workload runs supervised, its output goes to the console.
	if err := c.Start(rctx, guest.Workload{Cmd: []string{"sh", "-c", "echo weft-workload-says-$GREETING; exec sleep 1000"}, Env: map[string]string{"GREETING": "hi"}}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(rctx)
	if err != nil || !st.Running {
		t.Fatalf("workload status %+v, %v", st, err)
	}

	// The host reconnects (as a restarted node agent would): the guest
	// reopens its port, and the workload is still the same.
	c.Close()
	reconnect := time.Now()
	c, err = guest.Dial(rctx, agentSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ready(rctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("reconnected in %v", time.Since(reconnect).Round(time.Millisecond))
	st2, err := c.Status(rctx)
	if err != nil || st2 != st {
		t.Errorf("workload status after reconnect %+v, %v; want %+v", st2, err, st)
	}

	if err := c.Sync(rctx); err != nil {
		t.Fatal(err)
	}
	p, err := c.Ping(rctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping: %+v", p)

	if err := c.Shutdown(rctx, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		t.Logf("qemu exited (%v) %v after boot", err, time.Since(bootStart).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Fatal("qemu did not exit after shutdown")
	}

	// The marker reached the disk.
	if b, err := exec.Command("debugfs", "-R", "cat /root/marker", res.Disk).Output(); err == nil {
		if string(b) != "persisted\n" {
			t.Errorf("marker on disk = %q", b)
		}
	} else {
		t.Logf("debugfs unavailable, not checking the disk: %v", err)
	}
	b, _ := os.ReadFile(consoleLog)
	t.Logf("console:\n%s", b)
	if !bytes.Contains(b, []byte("weft-workload-says-hi")) {
		t.Error("the workload's output is not in the console log")
	}
}

// TestAptKeepsItsCacheInTheBuildCache: apt's package cache is written in
// the build cache, so that a build's apt runs after the first do not parse
// the package lists anew (the Debian container images switch the system's
// cache off).
func TestAptKeepsItsCacheInTheBuildCache(t *testing.T) {
	requireBuildTools(t)
	cache := t.TempDir()
	if _, err := kernelPackage(t.Context(), cache); err != nil {
		t.Skipf("apt cannot name the kernel here: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "apt-pkgcache.bin")); err != nil {
		t.Errorf("after an apt run, apt's cache in the build cache: %v", err)
	}
}
