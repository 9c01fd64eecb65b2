package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
)

// TestDevRunsTheCloudAndStopsCleanly runs `weft dev` as a user does: the
// controller, storage and agents in one process; a deployed service answers
// through the load balancer; Ctrl-C stops every instance. It runs on a PATH
// without runc or QEMU, so weft dev must say on its terminal (not only in
// its log) that it offers no container or vm runtime, and why; and it
// prints the development account's full connection string, which the Go
// SDK takes where it does not understand UseDevelopmentStorage=true.
func TestDevRunsTheCloudAndStopsCleanly(t *testing.T) {
	parallel(t) // its storage's fixed ports (10000-10002) are no other test's
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dev := exec.Command(weftBin, "dev", "--data", filepath.Join(dir, ".weft"), "--nodes", "2", "--listen", addr)
	dev.Dir = dir
	dev.Env = append(os.Environ(), "PATH="+t.TempDir())
	out, stdout := &syncBuilder{}, &syncBuilder{}
	dev.Stdout, dev.Stderr = io.MultiWriter(out, stdout), out
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
	// weft dev says where its API is only once its nodes are ready, so
	// that a deploy then spreads over them.
	c.waitFor("weft dev's API line", 20*time.Second, func() bool { return strings.Contains(stdout.String(), "weft dev: API ") })
	nodes, err := c.client.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, n := range nodes {
		if n.State == api.NodeReady {
			ready++
		}
	}
	if ready != 2 {
		t.Fatalf("weft dev said it was up with %d of its 2 nodes ready: %+v", ready, nodes)
	}
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
	for _, want := range []string{
		"weft dev: no container runtime on this host: container: runc: ",
		"weft dev: no vm runtime on this host: qemu: ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("weft dev's output lacks %q", want)
		}
	}
	var conn string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=") {
			conn = line
		}
	}
	if conn == "" {
		t.Fatalf("weft dev printed no connection string for devstoreaccount1 on stdout:\n%s", stdout.String())
	}
	if keys := c.mustWeft("storage", "account", "keys", "devstoreaccount1"); !strings.Contains(keys, conn) {
		t.Errorf("weft storage account keys devstoreaccount1 does not show the printed string %q:\n%s", conn, keys)
	}
	blobs, err := azblob.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(context.Background(), "devcheck", nil); err != nil {
		t.Errorf("the Go SDK with the printed connection string: %v", err)
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
	// A shim records its instance's exit before it ends itself: give the
	// last ones a moment.
	left := pidsUnder(dir)
	for deadline := time.Now().Add(10 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = pidsUnder(dir) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range left {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		t.Errorf("process %d left running 10s after weft dev stopped: %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
	}
	// It says what it stops: each node with its instances, then the rest.
	for _, want := range []string{"weft dev: stopping node-1: hello-", "weft dev: stopping node-2: hello-", "weft dev: stopping the controller", "weft dev: stopped in "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("weft dev's output after Ctrl-C lacks %q", want)
		}
	}
}

// syncBuilder is a strings.Builder that a process's output goroutines may
// write while the test reads it.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
