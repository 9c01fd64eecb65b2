package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/drivertest"
	"github.com/weftcloud/weft/internal/nbd"
	"github.com/weftcloud/weft/internal/qmp"
	"github.com/weftcloud/weft/internal/shim"
	"github.com/weftcloud/weft/internal/vmimage"
)

// The VM image every test boots, built once by TestMain.
var (
	imageDir  string // a node's image cache entry: image.json, kernel, initrd, disk
	imageSkip string // why VM tests cannot run here
	imageErr  error  // why building the image failed
)

// TestMain lets the test binary be the shim (the driver re-executes it
// with "weft-shim DIR", as it runs `weft shim DIR` in production), and
// builds the test image once for all tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "weft-shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Short paths: the instance directories hold unix sockets.
	dir, err := os.MkdirTemp("", "weft-qemu")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	imageSkip, imageErr = buildImage(dir)
	return m.Run()
}

// buildImage builds the test image into dir/image, or says why it cannot.
func buildImage(dir string) (skip string, err error) {
	if testing.Short() {
		return "boots VMs: skipped with -short", nil
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "apt-get", "apt-cache", "dpkg-deb", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("%s is not installed (apt-get install qemu-system-x86 qemu-utils e2fsprogs): VM tests need it", tool), nil
		}
	}
	t0 := time.Now()
	// The guest's /usr/bin/weft: the guest agent alone, static, built
	// with make build's settings so that the two share compiled packages.
	weft := filepath.Join(dir, "weft")
	build := exec.Command(goTool(), "build", "-trimpath", "-o", weft, "../../vmimage/testdata/guestmain")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the guest binary: %v\n%s", err, out)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := vmimage.Build(ctx, vmimage.Options{
		WorkDir:    filepath.Join(dir, "build"),
		CacheDir:   filepath.Join(cache, "weft", "debs"),
		WeftBinary: weft,
	})
	if err != nil {
		return "", fmt.Errorf("build the VM image: %w", err)
	}
	imageDir = filepath.Join(dir, "image")
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		return "", err
	}
	for name, src := range map[string]string{api.ImageFileKernel: res.Kernel, api.ImageFileInitrd: res.Initrd, api.ImageFileDisk: res.Disk} {
		if err := os.Rename(src, filepath.Join(imageDir, name)); err != nil {
			return "", err
		}
	}
	img := api.Image{
		Name: "test", Type: api.ImageVM, Arch: "amd64",
		VM: &api.VMImageConfig{Cmdline: res.Cmdline, DiskFormat: "raw", DiskSize: res.DiskSize, GuestAgent: true},
	}
	if err := atomicfile.WriteJSON(filepath.Join(imageDir, api.ImageMetaFile), img); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "test image (kernel %s) ready in %v\n", res.KernelVersion, time.Since(t0).Round(time.Millisecond))
	return "", nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// requireImage skips tests that boot VMs where they cannot run.
func requireImage(t *testing.T) {
	t.Helper()
	if imageSkip != "" {
		t.Skip(imageSkip)
	}
	if imageErr != nil {
		t.Fatal(imageErr)
	}
}

func newDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	cfg.ShimCommand = []string{os.Args[0], "weft-shim"}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// instanceDir is a fresh instance directory with a short path.
func instanceDir(t *testing.T, id string) string {
	t.Helper()
	base, err := os.MkdirTemp("", "wq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freePort returns a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startVM starts a VM running script with /bin/sh in the guest and stops
// and removes it at cleanup. It logs how long the guest took to be ready.
func startVM(t *testing.T, d *Driver, spec driver.Spec) driver.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	st, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("%s: boot to ready in %v (%s)", spec.ID, time.Since(t0).Round(time.Millisecond), d.Attributes()["vm.accel"])
	t.Cleanup(func() {
		d.Stop(context.Background(), spec.ID, time.Second)
		if t.Failed() {
			t.Logf("%s console:\n%s", spec.ID, readLogs(t, d, spec.ID))
		}
		d.Remove(context.Background(), spec.ID)
	})
	return st
}

func shSpec(t *testing.T, id, script string) driver.Spec {
	return driver.Spec{
		ID: id, Dir: instanceDir(t, id), Image: "test", ImageDir: imageDir,
		Command: []string{"/bin/sh", "-c", script},
		Memory:  256 << 20, CPU: 1,
	}
}

func readLogs(t *testing.T, d *Driver, id string) string {
	rc, err := d.Logs(context.Background(), id, 0, false)
	if err != nil {
		return err.Error()
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// execOut runs a shell command in the guest and returns its stdout.
func execOut(t *testing.T, d *Driver, id, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut strings.Builder
	code, err := d.Exec(ctx, id, []string{"/bin/sh", "-c", script}, &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("exec %q: code %d, %v; stderr %q", script, code, err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// programs for the suite. The guest agent logs each workload's command
// line to the console, that is into the instance's log, so the words the
// suite looks for there are split in the scripts ("rea""dy"): only the
// running program prints them whole.
var programs = map[drivertest.Program]string{
	drivertest.Serve:      `echo "star""ted"; env; exec sleep 600`,
	drivertest.Exit3:      `echo "b""ye"; exit 3`,
	drivertest.IgnoreTerm: `trap '' TERM; echo "rea""dy"; while true; do sleep 0.05; done`,
	drivertest.Hog:        `head -c 512m /dev/zero | tail > /dev/null`,
}

// TestConformance runs beside the other VM tests: its cases boot one VM
// each, one after another.
func TestConformance(t *testing.T) {
	requireImage(t)
	t.Parallel()
	drivertest.Run(t, drivertest.Runtime{
		New: func(t *testing.T) driver.Driver { return newDriver(t, Config{}) },
		Spec: func(t *testing.T, id, dir string, prog drivertest.Program) driver.Spec {
			port := freePort(t)
			return driver.Spec{
				ID: id, Dir: dir, Image: "test", ImageDir: imageDir,
				Command: []string{"/bin/sh", "-c", programs[prog]},
				Env:     map[string]string{"WEFT_INSTANCE": id, "WEFT_PORT_HTTP": strconv.Itoa(port), "GREETING": "hi there"},
				Ports:   map[string]int{"http": port},
				Memory:  256 << 20,
			}
		},
		Skip: map[string]string{"MemoryLimit": "a VM's memory limit is its size: the guest kernel, not the host, stops a hog"},
	})
}

// httpGet fetches / with a bare HTTP/1.0 request.
func httpGet(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestExecPortsAndEphemeralDisk boots one VM serving HTTP and checks, in
// turn, independent things on it: Exec (exit code, stdout and stderr
// apart, an unknown instance); that endpoints reach the guest (the host
// port to the guest port, here 80); that sockets go elsewhere when the
// instance's directory's path is too long for them; and that an instance
// without disks starts from the image every time: what it wrote is gone
// after a restart.
func TestExecPortsAndEphemeralDisk(t *testing.T) {
	requireImage(t)
	t.Parallel()
	d := newDriver(t, Config{})
	port := freePort(t)
	spec := shSpec(t, "web", `mkdir -p /tmp/www && echo "hello from $(hostname)" > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www`)
	spec.Ports = map[string]int{"http": port}
	spec.GuestPorts = map[string]int{"http": 80}
	// A directory too deep for unix sockets: they go elsewhere.
	spec.Dir = filepath.Join(spec.Dir, strings.Repeat("d", 100))
	if err := os.Mkdir(spec.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sockets := socketDir(spec.ID, spec.Dir)
	if sockets == spec.Dir {
		t.Fatalf("the socket directory is the long instance directory")
	}
	t.Cleanup(func() {
		if _, err := os.Stat(sockets); err == nil {
			t.Errorf("the socket directory %s is still there after Remove", sockets)
		}
	})
	st := startVM(t, d, spec)
	if !st.Running || st.PID == 0 {
		t.Errorf("status after Start: %+v", st)
	}

	t.Run("Exec", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var out, errOut strings.Builder
		code, err := d.Exec(ctx, "web", []string{"/bin/sh", "-c", "echo out; echo err >&2; exit 7"}, &out, &errOut)
		if err != nil || code != 7 || out.String() != "out\n" || errOut.String() != "err\n" {
			t.Errorf("exec: code %d, %v, stdout %q, stderr %q", code, err, out.String(), errOut.String())
		}
		if _, err := d.Exec(ctx, "nope", []string{"true"}, nil, nil); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("exec in an unknown instance: %v", err)
		}
	})

	t.Run("Ports", func(t *testing.T) {
		var body string
		var err error
		deadline := time.Now().Add(20 * time.Second)
		for {
			body, err = httpGet(fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil && strings.Contains(body, "hello from web") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET through the forwarded port: %q, %v", body, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("EphemeralDisk", func(t *testing.T) {
		execOut(t, d, "web", "echo written > /root/mark && sync")
		if err := d.Stop(context.Background(), "web", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
		if got := execOut(t, d, "web", "cat /root/mark 2>/dev/null || echo gone"); got != "gone" {
			t.Errorf("after a restart the ephemeral disk still has %q", got)
		}
	})
}

func TestPoweroffAndQEMUFailure(t *testing.T) {
	requireImage(t)
	t.Parallel()
	d := newDriver(t, Config{})
	// A minute for each step: under emulation on a loaded host one
	// context for all of them ran out while the second guest booted.
	step := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return ctx
	}
	startVM(t, d, shSpec(t, "off", "exec sleep 600"))
	// The guest powers itself off: QEMU exits cleanly. The command's
	// answer may never come (the guest is gone): its error is only logged.
	ctx := step()
	if _, err := d.Exec(ctx, "off", []string{"poweroff", "-f"}, nil, nil); err != nil {
		t.Logf("poweroff: %v", err)
	}
	st, err := d.Wait(ctx, "off")
	if err != nil || st.Running || !st.Exited || st.ExitCode != 0 || st.Reason != "guest powered off" {
		t.Errorf("after poweroff: %+v, %v; want exited 0, guest powered off", st, err)
	}

	// The guest kernel panics: panic=-1 and -no-reboot end QEMU, and the
	// console says why.
	startVM(t, d, shSpec(t, "panic", "exec sleep 600"))
	ctx = step()
	if _, err := d.Exec(ctx, "panic", []string{"/bin/sh", "-c", "echo c > /proc/sysrq-trigger"}, nil, nil); err != nil {
		t.Logf("the panic's trigger: %v", err)
	}
	st, err = d.Wait(ctx, "panic")
	if err != nil || !st.Exited || !strings.HasPrefix(st.Reason, "guest kernel panic: Kernel panic") {
		t.Errorf("after a panic: %+v, %v; want exited, guest kernel panic", st, err)
	}

	// QEMU itself fails: its message is the reason.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spec := shSpec(t, "clash", "exec sleep 600")
	spec.Ports = map[string]int{"http": ln.Addr().(*net.TCPAddr).Port}
	ctx = step()
	_, err = d.Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "forwarding") {
		t.Errorf("Start with a port in use: %v, want QEMU's complaint about host forwarding", err)
	}
	d.Remove(ctx, "clash")
}

// TestWorkloadExitCode checks a workload killed by a signal, and that an
// unknown instance is ErrNotFound.
func TestWorkloadExitCode(t *testing.T) {
	requireImage(t)
	t.Parallel()
	d := newDriver(t, Config{})
	startVM(t, d, shSpec(t, "sig", `kill -KILL $$`))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := d.Wait(ctx, "sig")
	if err != nil || !st.Exited || st.ExitCode != 137 || !strings.Contains(st.Reason, "signal 9") {
		t.Errorf("status: %+v, %v; want exited 137, killed by signal 9", st, err)
	}
	if _, err := d.Inspect(ctx, "nope"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Inspect of an unknown instance: %v", err)
	}
	if err := d.Stop(ctx, "nope", time.Second); err != nil {
		t.Errorf("Stop of an unknown instance: %v", err)
	}
}

// TestUnresponsiveGuest pauses a VM: its guest agent stops answering, and
// the driver gives it up after 15 s (60 s under emulation).
func TestUnresponsiveGuest(t *testing.T) {
	requireImage(t)
	t.Parallel()
	d := newDriver(t, Config{})
	startVM(t, d, shSpec(t, "hung", "exec sleep 600"))
	in, _ := d.lookup("hung")
	ctx, cancel := context.WithTimeout(context.Background(), d.unresponsiveAfter()+time.Minute)
	defer cancel()
	if err := d.qmp(ctx, in, func(q *qmp.Client) error { return q.Stop(ctx) }); err != nil {
		t.Fatal(err)
	}
	// What the watcher logs when it gives up: the VM is paused, the guest
	// had read all QEMU gave it, and QEMU took all it wrote.
	var filled, notified int
	state := d.agentPortState(in)
	if _, err := fmt.Sscanf(state, "VM paused; to the guest: %d buffers filled (notified up to %d), 0 of them not read yet", &filled, &notified); err != nil ||
		filled == 0 || !strings.HasSuffix(state, ", 0 written and not taken by QEMU") {
		t.Errorf("port state %q: want what the guest was sent all read, and nothing left untaken", state)
	}
	t0 := time.Now()
	st, err := d.Wait(ctx, "hung")
	if err != nil || !st.Exited || st.Reason != "guest agent stopped answering" {
		t.Errorf("status: %+v, %v; want exited, guest agent stopped answering", st, err)
	}
	t.Logf("killed %v after the pause", time.Since(t0).Round(time.Millisecond))
}

// TestGuestWithoutTimer boots an image whose kernel runs without its local
// APIC timer (noapictimer), as a guest whose timer calibration failed
// does: the guest agent says so in its hello, and Start boots the guest
// again, and then fails with the reason instead of returning a guest in
// which nothing that sleeps wakes up.
func TestGuestWithoutTimer(t *testing.T) {
	requireImage(t)
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{api.ImageFileKernel, api.ImageFileInitrd, api.ImageFileDisk} {
		if err := os.Symlink(filepath.Join(imageDir, name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	var img api.Image
	b, err := os.ReadFile(filepath.Join(imageDir, api.ImageMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &img); err != nil {
		t.Fatal(err)
	}
	img.VM.Cmdline += " noapictimer"
	if err := atomicfile.WriteJSON(filepath.Join(dir, api.ImageMetaFile), img); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, Config{})
	spec := shSpec(t, "notimer", "exec sleep 600")
	spec.ImageDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = d.Start(ctx, spec)
	defer d.Remove(context.Background(), spec.ID)
	if !errors.Is(err, errNoTimer) || !strings.Contains(err.Error(), fmt.Sprintf("%d boots", bootAttempts)) {
		t.Fatalf("Start of a guest without a timer: %v, want %d boots: %v", err, bootAttempts, errNoTimer)
	}
}

// TestTCG boots once in software emulation, whatever the host has, to see
// that it works. Where the host has no KVM every other VM test here boots
// in software emulation already: then it only checks the attribute.
func TestTCG(t *testing.T) {
	requireImage(t)
	t.Parallel()
	d := newDriver(t, Config{Accel: "tcg"})
	if got := d.Attributes()["vm.accel"]; got != "tcg" {
		t.Errorf("vm.accel = %q", got)
	}
	if newDriver(t, Config{}).Attributes()["vm.accel"] == "tcg" {
		t.Log("no KVM here: the other VM tests boot in software emulation")
		return
	}
	startVM(t, d, shSpec(t, "tcg", "exec sleep 600"))
	if got := execOut(t, d, "tcg", "echo ok"); got != "ok" {
		t.Errorf("exec: %q", got)
	}
}

// TestLiveMigration moves a running VM between two instances on this
// host: a counter started in the guest keeps counting, its uptime goes on,
// and what it wrote to its (ephemeral) disk goes along.
func TestLiveMigration(t *testing.T) {
	requireImage(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := newDriver(t, Config{})
	dst := newDriver(t, Config{})
	spec := shSpec(t, "mig", "exec sleep 600")
	spec.Ports = map[string]int{"http": freePort(t)}
	startVM(t, src, spec)
	execOut(t, src, "mig", `echo on-disk > /root/mark && sync && `+
		`(`+counterLoop+`) </dev/null >/dev/null 2>&1 &`)
	time.Sleep(time.Second)
	before := readCounter(t, src, "mig")
	uptimeBefore := readUptime(t, src, "mig")

	// The destination: another directory and host port, the same image.
	dspec := spec
	dspec.Dir = instanceDir(t, "mig")
	dspec.Ports = map[string]int{"http": freePort(t)}
	listen := "unix:" + filepath.Join(dspec.Dir, "migrate.sock")
	if _, err := dst.StartIncoming(ctx, dspec, listen); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dst.Stop(context.Background(), "mig", time.Second)
		if t.Failed() {
			t.Logf("destination console:\n%s", readLogs(t, dst, "mig"))
		}
		dst.Remove(context.Background(), "mig")
	})
	stats, err := src.MigrateTo(ctx, "mig", listen, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("MigrateTo: %v", err)
	}
	t.Logf("migration: total %v, downtime %v, %d MiB of memory sent", stats.Total, stats.Downtime, stats.RAM>>20)
	st, err := dst.FinishIncoming(ctx, "mig")
	if err != nil || !st.Running {
		t.Fatalf("FinishIncoming: %+v, %v", st, err)
	}
	if stats.Total <= 0 || stats.RAM <= 0 {
		t.Errorf("stats %+v", stats)
	}
	// FinishIncoming set the guest's clock to the host's: read it first
	// (at load 30-40 it read 3 s behind after the checks below). It reads
	// a second the host saw while the exec ran, give or take one as both
	// truncate.
	hostBefore := time.Now().Unix()
	out := execOut(t, dst, "mig", "date +%s")
	hostAfter := time.Now().Unix()
	if guestNow, _ := strconv.ParseInt(out, 10, 64); guestNow < hostBefore-1 || guestNow > hostAfter+1 {
		t.Errorf("guest clock %s, host %d to %d while it was read", out, hostBefore, hostAfter)
	}
	if st, err := src.Inspect(ctx, "mig"); err != nil || st.Running || st.ExitCode != 0 || st.Reason != ReasonMigrated {
		t.Errorf("the source after migrating: %+v, %v", st, err)
	}

	after := readCounter(t, dst, "mig")
	if after < before {
		t.Errorf("the counter went back from %d to %d", before, after)
	}
	time.Sleep(time.Second)
	if later := readCounter(t, dst, "mig"); later <= after {
		t.Errorf("the counter stopped at the destination: %d, a second later %d", after, later)
	}
	if up := readUptime(t, dst, "mig"); up < uptimeBefore {
		t.Errorf("uptime went back from %v to %v: the guest rebooted", uptimeBefore, up)
	}
	// The disk came along: read it past the page cache.
	if got := execOut(t, dst, "mig", "echo 3 > /proc/sys/vm/drop_caches; cat /root/mark"); got != "on-disk" {
		t.Errorf("the mark on the disk after migration: %q", got)
	}
	// And the workload is still watched: its exit ends the instance. The
	// counter's own short sleeps may end between killall's listing and
	// its kill, which makes it fail, and the VM may power off (the
	// workload ended) before the exec's answer leaves it: the wait below
	// says whether the workload's sleep was killed.
	kctx, kcancel := context.WithTimeout(ctx, 30*time.Second)
	defer kcancel()
	dst.Exec(kctx, "mig", []string{"/bin/sh", "-c", "killall -KILL sleep"}, io.Discard, io.Discard)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if st, err := dst.Wait(wctx, "mig"); err != nil || !st.Exited {
		t.Errorf("after the workload ended at the destination: %+v, %v", st, err)
	}
}

func readCounter(t *testing.T, d *Driver, id string) int {
	t.Helper()
	n, err := strconv.Atoi(execOut(t, d, id, "cat /tmp/counter"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readUptime(t *testing.T, d *Driver, id string) time.Duration {
	t.Helper()
	f := strings.Fields(execOut(t, d, id, "cat /proc/uptime"))
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(s * float64(time.Second))
}

// serveDisk serves a copy of src (or, when src is "", size zero bytes)
// over NBD on a unix socket, until the test ends.
func serveDisk(t *testing.T, name, src string, size int64) driver.Disk {
	t.Helper()
	dir := instanceDir(t, "nbd-"+name)
	path := filepath.Join(dir, "disk")
	if src != "" {
		if out, err := exec.Command("cp", "--sparse=always", src, path).CombinedOutput(); err != nil {
			t.Fatalf("copy the disk: %v: %s", err, out)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if src == "" {
		f.Truncate(size)
	}
	fi, _ := f.Stat()
	sock := filepath.Join(dir, "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	srv := &nbd.Server{Name: name, Backend: &nbd.File{F: f, Len: fi.Size()}}
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return driver.Disk{Name: name, Socket: sock, Export: name, Size: fi.Size()}
}

// TestPersistentDisks boots from a disk served over NBD, with a data disk,
// and checks that what the guest writes survives a restart.
func TestPersistentDisks(t *testing.T) {
	requireImage(t)
	t.Parallel()
	d := newDriver(t, Config{})
	spec := shSpec(t, "pvm", "exec sleep 600")
	spec.Disks = []driver.Disk{
		serveDisk(t, "os", filepath.Join(imageDir, api.ImageFileDisk), 0),
		serveDisk(t, "data1", "", 16<<20),
	}
	startVM(t, d, spec)
	if got := execOut(t, d, "pvm", "cat /sys/block/vdb/size"); got != strconv.Itoa(16<<20/512) {
		t.Errorf("the data disk has %s sectors", got)
	}
	execOut(t, d, "pvm", "echo kept > /root/mark && echo data | dd of=/dev/vdb conv=fsync 2>/dev/null")
	if err := d.Stop(context.Background(), "pvm", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(spec.Dir, overlayName)); err == nil {
		t.Error("a persistent VM got an overlay disk")
	}
	if _, err := d.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if got := execOut(t, d, "pvm", "cat /root/mark; head -c 5 /dev/vdb"); got != "kept\ndata" {
		t.Errorf("after a restart the disks hold %q, want the mark and the data", got)
	}
}

func TestBadImage(t *testing.T) {
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	d := newDriver(t, Config{Accel: "tcg"})
	tests := []struct {
		name  string
		image *api.Image // nil: no image.json
		files []string
		want  string
	}{
		{"no record", nil, nil, "read the image"},
		{"a container image", &api.Image{Name: "c", Type: api.ImageContainer}, nil, "not a vm image"},
		{"nothing to boot", &api.Image{Name: "k", Type: api.ImageVM, VM: &api.VMImageConfig{GuestAgent: true}}, nil, "has no disk"},
		{"no disk", &api.Image{Name: "d", Type: api.ImageVM, VM: &api.VMImageConfig{GuestAgent: true}}, []string{api.ImageFileKernel}, "has no disk"},
		{"no guest agent", &api.Image{Name: "g", Type: api.ImageVM, VM: &api.VMImageConfig{}}, []string{api.ImageFileKernel}, "no guest agent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.image != nil {
				atomicfile.WriteJSON(filepath.Join(dir, api.ImageMetaFile), tc.image)
			}
			for _, f := range tc.files {
				os.WriteFile(filepath.Join(dir, f), nil, 0o644)
			}
			spec := driver.Spec{ID: "bad", Dir: instanceDir(t, "bad"), ImageDir: dir, Command: []string{"true"}}
			_, err := d.Start(context.Background(), spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: %v, want an error saying %q", err, tc.want)
			}
			d.Remove(context.Background(), "bad")
		})
	}
}
