package process

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/drivertest"
	"github.com/weftcloud/weft/internal/shim"
)

// TestMain lets the test binary be the shim: the driver re-executes it with
// "weft-shim DIR", as it runs `weft shim DIR` in production.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "weft-shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// cgroupParent holds the test instances' cgroups; the container driver's
// tests use another, as their instances have the same names and go test
// may run both packages at once.
const cgroupParent = "weft-test-process"

func newDriver(t *testing.T) driver.Driver {
	d, err := New(Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupParent: cgroupParent})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var programs = map[drivertest.Program]string{
	drivertest.Serve:      `echo started; env; exec sleep 600`,
	drivertest.Exit3:      `echo bye; exit 3`,
	drivertest.IgnoreTerm: `trap '' TERM; echo ready; while true; do sleep 0.05; done`,
	drivertest.Hog:        `head -c 512m /dev/zero | tail > /dev/null`,
	drivertest.Busy:       `head -c 4194304 /dev/urandom > blob; x=$(head -c 20000000 /dev/zero | tr '\0' a); echo ready; while :; do :; done`,
}

func TestConformance(t *testing.T) {
	probe, _ := New(Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupParent: cgroupParent})
	drivertest.Run(t, drivertest.Runtime{
		New: newDriver,
		Spec: func(t *testing.T, id, dir string, prog drivertest.Program) driver.Spec {
			spec := driver.Spec{
				ID: id, Dir: dir, Command: []string{"/bin/sh", "-c", programs[prog]},
				Env:   map[string]string{"WEFT_INSTANCE": id, "WEFT_PORT_HTTP": "18080", "GREETING": "hi there"},
				Ports: map[string]int{"http": 18080},
			}
			switch prog {
			case drivertest.Hog:
				spec.Memory = 32 << 20
			case drivertest.Busy:
				spec.Memory, spec.CPU = 128<<20, 0.5
			}
			return spec
		},
		Limits: probe.Limits(),
		Busy:   true,
	})
}

// runToEnd starts spec with d, waits for it to exit and returns its output.
func runToEnd(t *testing.T, d driver.Driver, spec driver.Spec) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start %v: %v", spec.Command, err)
	}
	t.Cleanup(func() { d.Remove(context.Background(), spec.ID) })
	st, err := d.Wait(ctx, spec.ID)
	if err != nil || st.ExitCode != 0 {
		t.Fatalf("Wait %v: %+v, %v", spec.Command, st, err)
	}
	rc, err := d.Logs(ctx, spec.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out, _ := io.ReadAll(rc)
	return string(out)
}

// instanceDir makes an instance directory with a package root holding files.
func instanceDir(t *testing.T, files map[string]string) (dir, root string) {
	dir = t.TempDir()
	root = filepath.Join(dir, "root")
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(root, 0o755)
	return dir, root
}

// TestCommandResolution: a bare name is looked up on the instance's PATH
// (the default one, or the one its settings give), a name with a slash is
// taken in the package, and a name found nowhere fails the start saying so.
func TestCommandResolution(t *testing.T) {
	d := newDriver(t)
	files := map[string]string{
		"app":         "#!/bin/sh\necho package app $1\n",
		"bin/tool":    "#!/bin/sh\necho tool from PATH\n",
		"notexec.txt": "",
	}
	tests := []struct {
		name    string
		command []string
		env     map[string]string
		want    string // in the output; "" when the start must fail
		err     string
	}{
		{name: "sh on the default PATH", command: []string{"sh", "-c", "echo hi"}, want: "hi\n"},
		{name: "argv0 stays the bare name", command: []string{"sh", "-c", `echo "$0"`}, want: "sh\n"},
		{name: "package program with a slash", command: []string{"./app", "x"}, want: "package app x\n"},
		{name: "folder in the package", command: []string{"bin/tool"}, want: "tool from PATH\n"},
		{name: "PATH from the settings, relative to the package", command: []string{"tool"},
			env: map[string]string{"PATH": "bin:/usr/bin:/bin"}, want: "tool from PATH\n"},
		{name: "not on PATH", command: []string{"no-such-program-weft"}, err: `command "no-such-program-weft" not found in PATH ` + DefaultPath},
		{name: "bare package name is not taken from the package", command: []string{"app"}, err: `command "app" not found in PATH`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, root := instanceDir(t, files)
			spec := driver.Spec{ID: fmt.Sprintf("resolve-%d", i), Dir: dir, Package: root, Command: tc.command, Env: tc.env}
			if tc.err != "" {
				_, err := d.Start(context.Background(), spec)
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Start %v: %v, want an error containing %q", tc.command, err, tc.err)
				}
				return
			}
			if out := runToEnd(t, d, spec); out != tc.want {
				t.Fatalf("output of %v: %q, want %q", tc.command, out, tc.want)
			}
		})
	}
}

// TestInstanceOnAVirtualNetwork: an instance whose spec joins a virtual
// network runs in a network namespace of its own, the one JoinNetwork was
// given before it started (and so does Exec in it); it and what is exec'd
// in it see the spec's ResolvConf at /etc/resolv.conf while the host keeps
// its own; its port is relayed from the host; Remove deletes the
// namespace.
func TestInstanceOnAVirtualNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (apt-get install iproute2)")
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("needs busybox (its nc serves the instance's port)")
	}
	d := newDriver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port := freePort(t)
	var joined string
	dir, _ := instanceDir(t, nil)
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Skipf("the host has no /etc/resolv.conf for the instance's to cover: %v", err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	const ownResolv = "nameserver 10.99.0.1\nsearch shop.internal internal\n"
	if err := os.WriteFile(resolv, []byte(ownResolv), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := driver.Spec{ID: "net-test-" + strconv.Itoa(port), Dir: dir, ResolvConf: resolv,
		Command: []string{"/bin/sh", "-c", `readlink /proc/self/ns/net > netns; cat /etc/resolv.conf > resolv; exec busybox nc -ll -p "$WEFT_PORT_HTTP" -e /bin/echo hello`},
		Env:     map[string]string{"WEFT_PORT_HTTP": strconv.Itoa(port)}, Ports: map[string]int{"http": port},
		JoinNetwork: func(ctx context.Context, netns string) error {
			_, err := os.Stat(netns)
			joined = netns
			return err
		}}
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			d.Stop(context.Background(), spec.ID, 0)
			d.Remove(context.Background(), spec.ID)
		}
	})
	want, err := os.Readlink(joined)
	if err != nil {
		// A bind mount of a namespace reads as the file; its inode names it.
		var st syscall.Stat_t
		if err := syscall.Stat(joined, &st); err != nil {
			t.Fatalf("the joined namespace %q: %v", joined, err)
		}
		want = fmt.Sprintf("net:[%d]", st.Ino)
	}
	own, _ := os.Readlink("/proc/self/ns/net")
	var got string
	for deadline := time.Now().Add(10 * time.Second); got == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(dir, "netns")) // no package: it runs in dir
		got = strings.TrimSpace(string(b))
	}
	if got != want || got == own {
		t.Errorf("the instance's namespace %q, want the joined %q (%s), not the host's %q", got, want, joined, own)
	}
	// The instance writes resolv after netns: wait for it too.
	var resolvOut []byte
	for deadline := time.Now().Add(10 * time.Second); len(resolvOut) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resolvOut, _ = os.ReadFile(filepath.Join(dir, "resolv"))
	}
	if string(resolvOut) != ownResolv {
		t.Errorf("the instance's /etc/resolv.conf: %q, want its own %q", resolvOut, ownResolv)
	}
	var conf strings.Builder
	if code, err := d.(driver.Execer).Exec(ctx, spec.ID, []string{"cat", "/etc/resolv.conf"}, &conf, io.Discard); err != nil || code != 0 || conf.String() != ownResolv {
		t.Errorf("exec cat /etc/resolv.conf in the instance: %q, exit %d, %v; want %q", conf.String(), code, err, ownResolv)
	}
	if b, err := os.ReadFile("/etc/resolv.conf"); err != nil || string(b) != string(hostResolv) {
		t.Errorf("the host's /etc/resolv.conf changed: %q, %v", b, err)
	}
	var out strings.Builder
	if code, err := d.(driver.Execer).Exec(ctx, spec.ID, []string{"readlink", "/proc/self/ns/net"}, &out, io.Discard); err != nil || code != 0 || strings.TrimSpace(out.String()) != want {
		t.Errorf("exec in the instance: %q, exit %d, %v; want %q", out.String(), code, err, want)
	}
	var answer string
	for deadline := time.Now().Add(10 * time.Second); answer == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
			b, _ := io.ReadAll(c)
			c.Close()
			answer = string(b)
		}
	}
	if answer != "hello\n" {
		t.Errorf("the instance's port through the host: %q, want hello", answer)
	}
	if err := d.Stop(ctx, spec.ID, 0); err != nil {
		t.Fatal(err)
	}
	d.Remove(ctx, spec.ID)
	removed = true
	if _, err := os.Stat(joined); err == nil {
		t.Errorf("the namespace %s outlived Remove", joined)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
