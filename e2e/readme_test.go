package e2e

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
)

// TestTheReadmesFirstService runs the README's "Your own service" commands
// as they are written (bin/weft being the binary under test, and another
// public port than 8081): a python3 web role deployed from a folder answers
// through the load balancer.
func TestTheReadmesFirstService(t *testing.T) {
	parallel(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is missing: make deps installs it")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "<!-- first-service")
	_, block, ok2 := strings.Cut(section, "```sh\n")
	block, _, ok3 := strings.Cut(block, "\n```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no first-service block")
	}
	c := newCluster(t, 2)
	port := strconv.Itoa(freePort(t))
	// The port first: the binary's temporary folder may hold "8081" too.
	script := strings.ReplaceAll(strings.ReplaceAll(block, "8081", port), "bin/weft", weftBin)
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "WEFT_ADDR="+c.api)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's commands: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "<h1>my site</h1>") {
		t.Errorf("the README's curl did not get the page:\n%s", out)
	}
	ins, err := c.client.Instances(context.Background(), "mysite")
	healthy := 0
	for _, in := range ins {
		if in.Health == api.HealthHealthy {
			healthy++
		}
	}
	if err != nil || healthy != 2 {
		t.Errorf("%d healthy instances of mysite (%v), want 2", healthy, err)
	}
}
