package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// vmExtensionHandler notes each handler's run in the guest, with the
// settings file it was given squeezed onto one line.
const vmExtensionHandler = `#!/bin/sh
echo "$1 $(tr -d ' \n' < "$WEFT_EXTENSION_SETTINGS")" >> /root/hello.log
echo "ran $1"
`

// TestVMGuest boots one persistent VM on two nodes and follows, on it,
// the guest's extensions and metadata service, then its live migration:
// one TCG boot, cluster and image build instead of one per part.
func TestVMGuest(t *testing.T) {
	vmTest(t)
	c := newCluster(t, 2, storageFlags(t)...)
	c.mustWeft("image", "build", "tiny")
	if _, errOut, code := c.weft("vm", "create", "huge", "--image", "tiny", "--memory", "64Gi"); code == 0 || !strings.Contains(errOut, "more than any node has") {
		t.Errorf("a VM bigger than any node: exit %d, %q", code, errOut)
	}
	c.mustWeft("vm", "create", "guest", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi", "--wait", "--timeout", "4m")
	t.Run("ExtensionsAndMetadata", func(t *testing.T) { vmExtensionsAndMetadata(t, c.in(t)) })
	t.Run("LiveMigration", func(t *testing.T) { vmLiveMigration(t, c.in(t), "guest") })
}

// vmExtensionsAndMetadata follows extensions of the running VM guest
// through the real server, agent, QEMU and guest agent: a published
// extension and custom-script are set with weft vm extension set and
// reach success with their handlers' output (the protected setting
// reaches the guest in a 0600 file and never comes back through the API),
// a settings change runs update in place, removing the extension runs
// disable and uninstall and removes its files from the guest; a program in
// the guest asks the metadata service who it is; and the built-in monitor
// reports the guest's figures.
func vmExtensionsAndMetadata(t *testing.T, c *cluster) {
	ext := filepath.Join(c.dir, "ext-hello")
	os.MkdirAll(ext, 0o755)
	writeFile(t, filepath.Join(ext, "extension.json"), helloManifest)
	writeFile(t, filepath.Join(ext, "h"), vmExtensionHandler)
	os.Chmod(filepath.Join(ext, "h"), 0o755)
	c.mustWeft("extension", "publish", ext)
	file := func(name, content string) string { return writeFile(t, filepath.Join(c.dir, name), content) }
	vm := c.vm("guest")

	c.mustWeft("vm", "extension", "set", "guest", "hello", "--settings", file("hi.json", `{"greeting": "hi"}`),
		"--protected-settings", file("token.json", `{"token": "s3cret"}`))
	c.mustWeft("vm", "extension", "set", "guest", "custom-script", "--settings", file("script.json", `{"script": "echo script-ran; hostname"}`),
		"--protected-settings", file("command.json", `{"commandToExecute": "sh ./script.sh"}`))
	var exts []api.VMExtension
	settled := func(what string, want map[string]string) {
		t.Helper()
		c.waitFor(what, 2*time.Minute, func() bool {
			if err := json.Unmarshal([]byte(c.mustWeft("vm", "extension", "list", "guest", "-o", "json")), &exts); err != nil {
				t.Fatal(err)
			}
			if len(exts) != len(want) {
				return false
			}
			for _, e := range exts {
				if e.Status == nil || e.Status.Status != api.ExtensionSuccess || e.Status.Handler != want[e.Name] {
					return false
				}
			}
			return true
		})
	}
	settled("both extensions enabled in the guest", map[string]string{"hello": "enable", "custom-script": "enable"})
	for _, e := range exts {
		if e.Name == "custom-script" && !strings.Contains(e.Status.Output, "script-ran\n") {
			t.Errorf("custom-script's status %+v: want its script's output", e.Status)
		}
		if e.Name == "hello" && (e.Status.Output != "ran enable\n" || !e.Protected) {
			t.Errorf("hello: %+v, status %+v: want the enable handler's output and protected settings", e, e.Status)
		}
	}
	settings := `{"name":"hello","version":"1.0","settings":{"greeting":"%s"},"protectedSettings":{"token":"s3cret"}}`
	hi, bye := strings.Replace(settings, "%s", "hi", 1), strings.Replace(settings, "%s", "bye", 1)
	if got, want := c.mustWeft("vm", "exec", "guest", "--", "cat", "/root/hello.log"), "install "+hi+"\nenable "+hi+"\n"; got != want {
		t.Fatalf("the handlers noted in the guest:\n%s\nwant install then enable with the protected setting:\n%s", got, want)
	}
	if got := c.mustWeft("vm", "exec", "guest", "--", "stat", "-c", "%a", "/var/lib/weft/extensions/hello.settings.json"); strings.TrimSpace(got) != "600" {
		t.Errorf("the settings file in the guest has mode %q, want 600", got)
	}
	for _, args := range [][]string{{"vm", "show", "guest", "-o", "json"}, {"vm", "extension", "list", "guest", "-o", "json"}, {"instances", "-o", "json"}, {"service", "show", "guest", "-o", "json"}} {
		if out := c.mustWeft(args...); strings.Contains(out, "s3cret") || strings.Contains(out, "sh ./script.sh") {
			t.Errorf("weft %s shows a protected setting:\n%s", strings.Join(args, " "), out)
		}
	}

	// New public settings, the protected ones kept: update runs in place.
	c.mustWeft("vm", "extension", "set", "guest", "hello", "--settings", file("bye.json", `{"greeting": "bye"}`))
	settled("hello updated", map[string]string{"hello": "update", "custom-script": "enable"})
	if got := c.mustWeft("vm", "exec", "guest", "--", "tail", "-n", "1", "/root/hello.log"); got != "update "+bye+"\n" {
		t.Errorf("after the settings change the guest noted %q, want update with the new settings and the kept secret", got)
	}
	if now := c.vm("guest"); now.Instance != vm.Instance {
		t.Errorf("the settings change replaced the instance: %s, then %s", vm.Instance, now.Instance)
	}

	// Removed: disable, uninstall, and its files go from the guest.
	c.mustWeft("vm", "extension", "remove", "guest", "hello")
	settled("hello removed", map[string]string{"custom-script": "enable"})
	c.waitFor("hello's files gone from the guest", time.Minute, func() bool {
		_, _, code := c.weft("vm", "exec", "guest", "--", "test", "-e", "/var/lib/weft/extensions/hello")
		return code == 1
	})
	if got := c.mustWeft("vm", "exec", "guest", "--", "tail", "-n", "2", "/root/hello.log"); got != "disable "+bye+"\nuninstall "+bye+"\n" {
		t.Errorf("removing hello, the guest noted %q, want disable then uninstall", got)
	}
	if _, errOut, code := c.weft("vm", "extension", "remove", "guest", "hello"); code == 0 || !strings.Contains(errOut, "VM guest has no extension hello") {
		t.Errorf("removing it again: exit %d, %s", code, errOut)
	}

	// The metadata service, from inside the guest: WEFT_METADATA is the
	// guest agent's (on the guest's loopback, port 80 left to the guest),
	// which asks the node's agent over the VM's port; a token of another
	// instance in the request changes nothing.
	if got := c.mustWeft("vm", "exec", "guest", "--", "sh", "-c", "echo $WEFT_METADATA"); got != "http://127.0.0.1:169\n" {
		t.Errorf("WEFT_METADATA in the guest is %q", got)
	}
	for _, url := range []string{"$WEFT_METADATA"} { // 127.0.0.1:169
		out := c.mustWeft("vm", "exec", "guest", "--", "sh", "-c",
			`wget -q -O - --header 'Metadata: true' --header 'Authorization: Bearer someone-else' "`+url+`/metadata/instance"`)
		var md api.InstanceMetadata
		if err := json.Unmarshal([]byte(out), &md); err != nil {
			t.Fatalf("the metadata service at %s answered %q: %v", url, out, err)
		}
		if md.ID != vm.Instance || md.Service != "guest" || md.Role != api.VMRole {
			t.Errorf("at %s the guest is told it is %+v, want instance %s of guest/%s", url, md, vm.Instance, api.VMRole)
		}
	}

	// The built-in monitor samples the guest's figures; weft vm show shows them.
	c.mustWeft("vm", "extension", "set", "guest", "monitor", "--settings", file("monitor.json", `{"interval": 5}`))
	settled("monitor enabled", map[string]string{"custom-script": "enable", "monitor": "enable"})
	var first time.Time
	c.waitFor("a second sample of the guest's figures", time.Minute, func() bool {
		for _, e := range c.vm("guest").Extensions {
			if f := e.Status.Figures; e.Name == "monitor" && f != nil {
				if f.CPUs < 1 || f.MemoryTotal < 100<<20 || f.MemoryUsed <= 0 || f.DiskTotal < 100<<20 || f.DiskUsed <= 0 || f.CPUPercent < 0 || f.CPUPercent > 100 {
					t.Fatalf("the guest's figures: %+v", f)
				}
				if first.IsZero() {
					first = f.SampledAt
				}
				return f.SampledAt.After(first)
			}
		}
		return false
	})
	if out := c.mustWeft("vm", "show", "guest"); !strings.Contains(out, "Guest:") || !strings.Contains(out, "memory ") {
		t.Errorf("weft vm show has no guest figures:\n%s", out)
	}
}

// BenchmarkVMExtensionSet times weft vm extension set to the extension's
// status at success with the new settings' output, on a running VM
// (TCG where KVM does not work): custom-script with a new script each
// run, so each is an update handler run in the guest. Run it with
// -benchtime 5x.
func BenchmarkVMExtensionSet(b *testing.B) {
	requireQEMU(b)
	c := newCluster(b, 1, storageFlags(b)...)
	c.mustWeft("image", "build", "tiny")
	c.mustWeft("vm", "create", "guest", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi", "--wait", "--timeout", "4m")
	ctx := context.Background()
	var took []time.Duration
	run := 0
	for b.Loop() {
		run++
		settings := writeFile(b, filepath.Join(c.dir, "script.json"), fmt.Sprintf(`{"script": "echo ran-%d"}`, run))
		start := time.Now()
		c.mustWeft("vm", "extension", "set", "guest", "custom-script", "--settings", settings)
		want := fmt.Sprintf("ran-%d\n", run)
		pollFor(b, "custom-script at success with the new output", 2*time.Minute, func() bool {
			exts, err := c.client.VMExtensions(ctx, "guest")
			return err == nil && len(exts) == 1 && exts[0].Status != nil &&
				exts[0].Status.Status == api.ExtensionSuccess && exts[0].Status.Output == want
		})
		took = append(took, time.Since(start))
	}
	b.ReportMetric(p50ms(took), "set-to-success-ms")
	b.ReportMetric(0, "ns/op")
}
