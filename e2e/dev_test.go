package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/client"
)

// TestDevRunsTheCloudAndStopsCleanly runs `weft dev` as a user does: the
// controller, storage and agents in one process; a deployed service answers
// through the load balancer; Ctrl-C stops every instance.
func TestDevRunsTheCloudAndStopsCleanly(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dev := exec.Command(weftBin, "dev", "--data", filepath.Join(dir, ".weft"), "--nodes", "2", "--listen", addr)
	dev.Dir = dir
	out := &strings.Builder{}
	dev.Stdout, dev.Stderr = out, out
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- dev.Wait() }()
	defer func() {
		dev.Process.Kill()
		for _, pid := range pidsUnder(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("weft dev output:\n%s", tail(out.String(), 40))
		}
	}()

	c := &cluster{t: t, dir: dir, api: "http://" + addr, apiArg: addr, client: client.New(addr), agents: map[string]*proc{}}
	c.waitFor("two nodes", 20*time.Second, func() bool {
		nodes, err := c.client.Nodes(context.Background())
		return err == nil && len(nodes) == 2
	})
	lbPort := freePort(t)
	c.mustWeft("deploy", "-f", c.service("hello", lbPort, 2, "dev"), "--wait", "--timeout", "60s")
	if body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", lbPort)); !strings.Contains(body, "dev") {
		t.Errorf("the load balancer answered %q", body)
	}
	// The storage service is up with the development account.
	resp, err := http.Get("http://127.0.0.1:10000/devstoreaccount1?comp=list")
	if err != nil {
		t.Fatalf("storage not serving: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous list of the dev account: %s, want 401 or 403", resp.Status)
	}

	dev.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("weft dev exited with %v after Ctrl-C", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("weft dev did not stop within 30s of Ctrl-C")
	}
	if left := pidsUnder(dir); len(left) > 0 {
		t.Errorf("processes left running after weft dev stopped: %v", left)
	}
}
