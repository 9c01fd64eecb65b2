package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
)

// versionModel writes a model of service hello into dir: role web with n
// instances whose setting VERSION is version.
func versionModel(t *testing.T, dir string, n int, version string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site", "server"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	model := fmt.Sprintf("name: hello\nroles:\n  - name: web\n    kind: worker\n    runtime: process\n    package: ./site\n"+
		"    command: [./server]\n    instances: %d\n    settings:\n      VERSION: %q\n", n, version)
	file := filepath.Join(dir, fmt.Sprintf("hello-%d-%s.yaml", n, version))
	if err := os.WriteFile(file, []byte(model), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// scrubIDs fixes the random part of instance IDs.
func scrubIDs(s string) string {
	return regexp.MustCompile(`(hello-web-\d+-)[a-z0-9]{4}`).ReplaceAllString(s, "${1}xxxx")
}

// TestDeployPlanAndCountPrompt: after weft scale (which keeps the version),
// deploy --plan of the file says the count goes back and which instances
// stop and are replaced, by update domain; deploy says the count change,
// asks on a terminal (no: nothing changes; yes: deployed), does not ask
// with --yes, and does not ask in a script.
func TestDeployPlanAndCountPrompt(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	addr, op := runningController(t)
	c := client.New(addr).WithToken(op)
	// The controller has no nodes: instances stay pending, which is
	// enough for them to hold their slots and update domains.
	waitInstances := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			ins, err := c.Instances(context.Background(), "hello")
			live := 0
			for _, in := range ins {
				if in.Desired == api.DesiredRunning {
					live++
				}
			}
			if err == nil && live == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d live instances, want %d (%v)", live, n, err)
			}
		}
	}
	on := func(stdin *os.File, args ...string) (string, string, int) {
		t.Helper()
		return weftFrom(t, stdin, addr, append([]string{"--token", op}, args...)...)
	}
	as := func(args ...string) (string, string, int) {
		t.Helper()
		return weft(t, addr, append([]string{"--token", op}, args...)...)
	}
	dir := t.TempDir()
	v1, v2 := versionModel(t, dir, 3, "1"), versionModel(t, dir, 3, "2")

	if out, errOut, code := as("deploy", "-f", v1); code != 0 || out != "service hello: version 1, updating\n" {
		t.Fatalf("deploy: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitInstances(3)
	if out, errOut, code := as("scale", "hello", "web", "5"); code != 0 || out != "service hello: version 1, updating\n" {
		t.Fatalf("scale: exit %d, stdout %q (want version 1, updating), stderr %q", code, out, errOut)
	}
	waitInstances(5)

	out, errOut, code := as("deploy", "-f", v2, "--plan")
	if code != 0 {
		t.Fatalf("deploy --plan: exit %d: %s", code, errOut)
	}
	checkGolden(t, "deploy-plan.golden", scrubIDs(out))
	out, _, _ = as("deploy", "-f", v2, "--plan", "-o", "json")
	checkGolden(t, "deploy-plan.json.golden", scrubIDs(out))
	if _, errOut, code := as("deploy", "-f", v2, "--plan", "--yes"); code != 2 {
		t.Errorf("deploy --plan --yes: exit %d (%s), want a usage error", code, errOut)
	}

	// On a terminal: asked, and no keeps everything as it was.
	master, tty := openPTY(t)
	master.WriteString("n\n")
	out, errOut, code = on(tty, "deploy", "-f", v2)
	if code != 1 || out != "" || !strings.HasSuffix(errOut, "Deploy these counts? [y/N] weft: deploy: not confirmed; nothing was changed\n") ||
		!strings.Contains(errOut, "hello/web: 5 -> 3 instances, as the model says (stops hello-web-3-") {
		t.Errorf("deploy answered no: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if svc, err := c.Service(context.Background(), "hello"); err != nil || svc.Version != 1 || svc.Spec.Roles[0].Instances != 5 {
		t.Fatalf("after no: %+v, %v; want version 1 with 5 instances", svc, err)
	}
	master.WriteString("y\n")
	if out, errOut, code := on(tty, "deploy", "-f", v2); code != 0 || out != "service hello: version 2, updating\n" {
		t.Errorf("deploy answered yes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitInstances(3)

	// --yes does not ask (the "n" typed would refuse it if it did).
	if _, err := c.Scale(context.Background(), "hello", "web", 4); err != nil {
		t.Fatal(err)
	}
	waitInstances(4)
	master.WriteString("n\n")
	if out, errOut, code := on(tty, "deploy", "-f", v2, "--yes"); code != 0 || strings.Contains(errOut, "[y/N]") ||
		!strings.Contains(errOut, "hello/web: 4 -> 3 instances") || !strings.HasPrefix(out, "service hello: version 2, ") {
		t.Errorf("deploy --yes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// In a script: says the change, does not ask, deploys.
	if _, err := c.Scale(context.Background(), "hello", "web", 4); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := as("deploy", "-f", v2); code != 0 || strings.Contains(errOut, "[y/N]") ||
		!strings.Contains(errOut, "hello/web: 4 -> 3 instances") || !strings.HasPrefix(out, "service hello: version 2, ") {
		t.Errorf("deploy from a script: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if svc, err := c.Service(context.Background(), "hello"); err != nil || svc.Version != 2 || svc.Spec.Roles[0].Instances != 3 {
		t.Errorf("after the deploys: %+v, %v; want version 2 with 3 instances", svc, err)
	}
}
