package container

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/drivertest"
	"github.com/weftcloud/weft/internal/instancenet"
	"github.com/weftcloud/weft/internal/runc"
	"github.com/weftcloud/weft/internal/shim"
)

// TestMain lets the test binary be the shim, as `weft shim DIR` is in
// production.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "weft-shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// requireHost skips where containers cannot run: no runc, not root, or no
// static busybox to make the test image from.
func requireHost(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts containers")
	}
	if _, err := (runc.Runtime{}).Resolve(); err != nil {
		t.Skip("runc is not installed (apt-get install runc)")
	}
	if os.Geteuid() != 0 {
		t.Skip("containers need root")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("the test image needs a static busybox (apt-get install busybox-static)")
	}
}

// busyboxImage lays out a node's image cache entry: image.json and a
// rootfs holding a static busybox with its applets.
func busyboxImage(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "env", "echo", "head", "tail", "httpd", "cat", "mkdir", "ls", "wget"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"www", "etc", "proc", "sys", "dev", "tmp"} {
		os.MkdirAll(filepath.Join(dir, "rootfs", d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "rootfs", "www", "index.html"), []byte("hello from a container\n"), 0o644)
	img := api.Image{Name: "busybox", Type: api.ImageContainer, Container: &api.ContainerImageConfig{
		Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo no command"}, Env: []string{"FROM_IMAGE=yes", "GREETING=image default"},
	}}
	if err := atomicfile.WriteJSON(filepath.Join(dir, api.ImageMetaFile), img); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newDriver(t testing.TB, runcRoot string) *Driver {
	t.Helper()
	d, err := New(Config{
		ShimCommand:  []string{os.Args[0], "weft-shim"},
		Runc:         runc.Runtime{Root: runcRoot},
		CgroupParent: "weft-test-container", // not the process driver tests' (same instance names)
	})
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
	requireHost(t)
	image := busyboxImage(t)
	runcRoot := t.TempDir()
	probe := newDriver(t, runcRoot)
	drivertest.Run(t, drivertest.Runtime{
		New: func(t *testing.T) driver.Driver { return newDriver(t, runcRoot) },
		Spec: func(t *testing.T, id, dir string, prog drivertest.Program) driver.Spec {
			spec := driver.Spec{
				ID: id, Dir: dir, Image: "busybox", ImageDir: image,
				Command: []string{"/bin/sh", "-c", programs[prog]},
				Env:     map[string]string{"WEFT_INSTANCE": id, "GREETING": "hi there"},
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

// TestPortsImageAndExec checks what only containers have: the image's
// entrypoint and environment, the role's port relayed from the host into
// the container's own network namespace, a writable layer thrown away on
// restart, and exec.
func TestPortsImageAndExec(t *testing.T) {
	requireHost(t)
	d := newDriver(t, t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := filepath.Join(t.TempDir(), "web")
	os.MkdirAll(dir, 0o755)
	spec := driver.Spec{
		ID: "ct-web", Dir: dir, Image: "busybox", ImageDir: busyboxImage(t),
		// Only the arguments: the image's entrypoint is /bin/sh -c.
		Command: []string{"/bin/sh", "-c", fmt.Sprintf("echo $FROM_IMAGE $GREETING; touch /scratch; exec httpd -f -p %d -h /www", port)},
		Env:     map[string]string{"GREETING": "role setting"},
		Ports:   map[string]int{"http": port},
	}
	ctx := context.Background()
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(ctx, spec.ID, time.Second); d.Remove(ctx, spec.ID) })

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if body != "hello from a container\n" {
		t.Fatalf("GET through the relayed port: %q", body)
	}
	rc, _ := d.Logs(ctx, spec.ID, 0, false)
	out, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(out), "yes role setting") {
		t.Errorf("logs %q: want the image's variable and the role's override", out)
	}

	var stdout, stderr strings.Builder
	code, err := d.Exec(ctx, spec.ID, []string{"/bin/sh", "-c", "ls /scratch && hostname && cat /proc/net/dev | grep -c eth0 && exit 7"}, &stdout, &stderr)
	if err != nil || code != 7 {
		t.Fatalf("exec: code %d, %v (stderr %q)", code, err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "/scratch") || !strings.Contains(stdout.String(), "ct-web") {
		t.Errorf("exec output %q", stdout.String())
	}

	// The host's view: the container has its own namespace; nothing of
	// its writable layer survives a restart.
	if err := d.Stop(ctx, spec.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	spec.Command = []string{"/bin/sh", "-c", "test -e /scratch && echo scratch survived || echo fresh; exec sleep 60"}
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		rc, _ := d.Logs(ctx, spec.ID, 0, false)
		out, _ := io.ReadAll(rc)
		rc.Close()
		if strings.Contains(string(out), "fresh") {
			break
		}
		if strings.Contains(string(out), "survived") || time.Now().After(deadline) {
			t.Fatalf("after restart: %q", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadImage checks that a missing or wrong image is a clear error that
// leaves nothing behind.
func TestBadImage(t *testing.T) {
	requireHost(t)
	d := newDriver(t, t.TempDir())
	dir := t.TempDir()
	_, err := d.Start(context.Background(), driver.Spec{ID: "ct-bad", Dir: dir, Image: "nope", ImageDir: filepath.Join(dir, "missing")})
	if err == nil || !strings.Contains(err.Error(), `image "nope" is not on this node`) {
		t.Errorf("start with a missing image: %v", err)
	}
	image := busyboxImage(t)
	_, err = d.Start(context.Background(), driver.Spec{ID: "ct-bad", Dir: dir, Image: "busybox", ImageDir: image, Command: []string{"/no/such/binary"}})
	if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Errorf("start with a missing binary: %v", err)
	}
	if out, _ := exec.Command("ip", "link").Output(); strings.Contains(string(out), "ct-bad") {
		t.Error("a failed start left a link behind")
	}
	if _, err := os.Stat(filepath.Join(dir, instancenet.File)); err == nil {
		t.Error("a failed start left its network allocated")
	}
}

// TestMetadataIsRelayedIntoTheContainer checks that a container reaches
// the node's metadata service, which listens on the node's loopback, at
// 169.254.169.254 inside its own namespace, with its token.
func TestMetadataIsRelayedIntoTheContainer(t *testing.T) {
	requireHost(t)
	d := newDriver(t, t.TempDir())
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", r.URL.Path, r.Header.Get(api.MetadataHeader), r.Header.Get("Authorization"))
	}))
	defer md.Close()
	dir := filepath.Join(t.TempDir(), "md")
	os.MkdirAll(dir, 0o755)
	spec := driver.Spec{
		ID: "ct-md", Dir: dir, Image: "busybox", ImageDir: busyboxImage(t),
		Command: []string{"/bin/sh", "-c", "exec sleep 60"},
		Env:     map[string]string{api.EnvMetadata: md.URL, api.EnvMetadataToken: "tok"},
	}
	ctx := context.Background()
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(ctx, spec.ID, time.Second); d.Remove(ctx, spec.ID) })
	var stdout, stderr strings.Builder
	code, err := d.Exec(ctx, spec.ID, []string{"/bin/sh", "-c",
		`echo $WEFT_METADATA; wget -q -O - --header "Metadata: true" --header "Authorization: Bearer $WEFT_METADATA_TOKEN" $WEFT_METADATA/metadata/instance`}, &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("exec: code %d, %v (stderr %q)", code, err, stderr.String())
	}
	if want := "http://169.254.169.254\n/metadata/instance true Bearer tok"; stdout.String() != want {
		t.Errorf("inside the container: %q, want %q", stdout.String(), want)
	}
}
