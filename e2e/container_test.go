package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/loadgen"
	"github.com/weftcloud/weft/internal/ociimage"
)

func requireRunc(t testing.TB) {
	t.Helper()
	requireE2E(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("the container runtime needs runc (apt-get install runc)")
	}
	if os.Geteuid() != 0 {
		t.Skip("the container runtime needs root")
	}
}

// helloImage imports the hello example as a container image (an OCI layout
// made here from the static binary: nothing is pulled from a registry).
func (c *cluster) helloImage(name, greeting string) {
	c.t.Helper()
	root := filepath.Join(c.dir, "images", name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		c.t.Fatal(err)
	}
	copyExecutable(c.t, helloBin, filepath.Join(root, "hello"))
	// A static busybox to exec in the containers.
	if bb, err := os.ReadFile("/bin/busybox"); err == nil {
		os.WriteFile(filepath.Join(root, "busybox"), bb, 0o755)
	}
	img, err := ociimage.Build(root, api.ContainerImageConfig{Entrypoint: []string{"/hello"}, Env: []string{"GREETING=" + greeting}}, runtime.GOARCH)
	if err != nil {
		c.t.Fatal(err)
	}
	layout := root + ".oci"
	if err := ociimage.WriteLayout(layout, img); err != nil {
		c.t.Fatal(err)
	}
	c.mustWeft("image", "import", name, layout)
}

func (c *cluster) containerService(name, image string, port, instances int) string {
	c.t.Helper()
	dir := filepath.Join(c.dir, "models")
	os.MkdirAll(dir, 0o755)
	return writeFile(c.t, filepath.Join(dir, name+"-"+strings.ReplaceAll(image, ":", "-")+".yaml"), fmt.Sprintf(`name: %s
upgradeDomains: 3
roles:
  - name: web
    kind: web
    runtime: container
    image: %s
    instances: %d
    size: {cpu: 0.2, memory: 64Mi}
    endpoints:
      - {name: http, protocol: http, port: %d}
    health:
      http: {path: /healthz, endpoint: http}
      interval: 250ms
      timeout: 1s
      failures: 2
`, name, image, instances, port))
}

// TestContainerWebRole runs a container web role of 3 behind the load
// balancer, heals an instance its memory limit killed, upgrades it to a new
// image under load without a failed request, and survives an agent restart
// without restarting its containers.
func TestContainerWebRole(t *testing.T) {
	parallel(t)
	requireRunc(t)
	c := newCluster(t, 3, append(storageFlags(t), agentRestartTTL...)...)
	c.helloImage("hello:v1", "one")
	c.helloImage("hello:v2", "two")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	c.mustWeft("deploy", "-f", c.containerService("web", "hello:v1", port, 3), "--wait", "--timeout", "90s")
	if body := get(t, url); !strings.Contains(body, "one") {
		t.Fatalf("the load balancer answered %q", body)
	}
	nodes := map[string]bool{}
	for _, in := range c.instances("web") {
		nodes[in.Node] = true
	}
	if len(nodes) != 3 {
		t.Errorf("3 instances on %d nodes, want one per fault domain", len(nodes))
	}

	// An instance that outgrows its 64 MiB is killed by the kernel and healed.
	victim := c.instances("web")[0]
	resp, err := http.Get("http://" + victim.Address + "/hog?mb=200")
	if err == nil {
		resp.Body.Close()
	}
	c.waitFor("the OOM-killed instance restarted and healthy", 30*time.Second, func() bool {
		for _, in := range c.instances("web") {
			if in.ID == victim.ID {
				return in.Restarts > victim.Restarts && in.Health == api.HealthHealthy
			}
		}
		return false
	})
	if events := c.mustWeft("events", "-o", "json"); !strings.Contains(events, "out of memory") {
		t.Errorf("no event says the instance ran out of memory")
	}

	// An agent restart adopts the running containers: same processes.
	adoptee := c.instances("web")[1]
	pid := pidOf(t, adoptee.ID)
	c.kill9(c.agents[adoptee.Node])
	c.startAgent(adoptee.Node)
	time.Sleep(2 * time.Second)
	c.waitFor("all healthy after the agent restart", 20*time.Second, func() bool { return c.healthy("web") == 3 })
	if got := pidOf(t, adoptee.ID); got != pid {
		t.Errorf("the container's process changed across the agent restart: %d, then %d", pid, got)
	}

	// A new image is a rolling upgrade that loses no request.
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan loadgen.Result, 1)
	go func() { results <- loadgen.Run(ctx, url, 8, 5*time.Second) }()
	time.Sleep(300 * time.Millisecond)
	c.mustWeft("deploy", "-f", c.containerService("web", "hello:v2", port, 3), "--wait", "--timeout", "120s")
	time.Sleep(300 * time.Millisecond)
	cancel()
	res := <-results
	t.Logf("load during the image upgrade: %s", res)
	if res.Requests == 0 || res.Failures != 0 {
		t.Errorf("%d of %d requests failed during the upgrade: %v", res.Failures, res.Requests, res.Errors)
	}
	if body := get(t, url); !strings.Contains(body, "two") {
		t.Errorf("after the upgrade the service answers %q", body)
	}
	if _, errOut, code := c.weft("image", "delete", "hello:v2"); code == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("deleting the running image: exit %d, %q", code, errOut)
	}

	// A reimage throws away what the container wrote.
	target := c.instances("web")[0]
	c.mustWeft("exec", target.ID, "--", "/busybox", "touch", "/scratch")
	c.mustWeft("exec", target.ID, "--", "/busybox", "test", "-e", "/scratch")
	c.mustWeft("instance", "reimage", target.ID, "--wait", "--timeout", "60s")
	if _, _, code := c.weft("exec", target.ID, "--", "/busybox", "test", "-e", "/scratch"); code != 1 {
		t.Errorf("after the reimage, test -e of the file the container wrote: exit %d, want 1", code)
	}
	if _, errOut, code := c.weft("instance", "reimage", "web-nosuch-0-abcd"); code == 0 || !strings.Contains(errOut, "no instance") {
		t.Errorf("reimage of an unknown instance: exit %d, %q", code, errOut)
	}
}
