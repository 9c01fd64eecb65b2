package agent

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/process"
)

// copyCounter is the process driver with driver.Copier added: it notes
// what the agent copies into an instance (a process instance reads the
// node's files where they are, so nothing needs copying).
type copyCounter struct {
	*process.Driver
	mu     sync.Mutex
	copies map[string]int // source path -> times copied
}

var _ driver.Copier = (*copyCounter)(nil)

func (c *copyCounter) CopyIn(ctx context.Context, id, src, dst string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.copies[src]++
	return nil
}

func (c *copyCounter) RemoveIn(ctx context.Context, id, path string) error { return nil }

func (c *copyCounter) count(src string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.copies[src]
}

// TestExtensionFolderCopiedOncePerVersion: the agent copies a published
// extension's folder into an instance (a VM's guest) once per version,
// not before each handler: install, enable and a settings update share
// one copy; the instance starting afresh and a new version each copy it
// again. The settings file goes in before every handler.
func TestExtensionFolderCopiedOncePerVersion(t *testing.T) {
	pkg, digest := scriptPackage(t, map[string]string{
		api.ExtensionManifestFile: `{"name": "hello", "version": "1.0", "handlers": {"install": ["true"], "enable": ["true"], "update": ["true"]},
			"settings": {"public": {"greeting": {"type": "string"}}}}`,
	})
	_, srv := newFakeController(t, pkg)
	d, err := process.New(process.Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	cc := &copyCounter{Driver: d, copies: map[string]int{}}
	a, err := New(Config{Name: "node-1", DataDir: t.TempDir(), Drivers: []driver.Driver{cc}}, client.New(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	asg := api.Assignment{Instance: api.Instance{ID: "ext-w-0-aaaa"}, Role: api.RoleSpec{Name: "w", Runtime: api.RuntimeProcess}}
	in := newInstance(a, asg, cc)
	os.MkdirAll(in.dir, 0o700)
	if _, err := d.Start(ctx, driver.Spec{ID: in.id, Dir: in.dir, Command: []string{"sleep", "600"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(ctx, in.id, time.Second); d.Remove(ctx, in.id) })

	folder, settings := in.extDir()+"/hello", in.extDir()+"/hello.settings.json"
	apply := func(version, greeting string, started bool, wantFolder, wantSettings int) {
		t.Helper()
		ref := api.ExtensionRef{Name: "hello", Version: version, Package: digest, Settings: map[string]any{"greeting": greeting}}
		in.mu.Lock()
		in.asg.Role.Extensions = []api.ExtensionRef{ref}
		in.mu.Unlock()
		in.applyExtensions(ctx, []api.ExtensionRef{ref}, started)
		in.mu.Lock()
		st := in.extensionStatuses()
		in.mu.Unlock()
		if len(st) != 1 || st[0].Status != api.ExtensionSuccess {
			t.Fatalf("statuses %+v", st)
		}
		if got := cc.count(folder); got != wantFolder {
			t.Errorf("version %s, greeting %s, started %v: the folder copied %d times in all, want %d", version, greeting, started, got, wantFolder)
		}
		if got := cc.count(settings); got != wantSettings {
			t.Errorf("version %s, greeting %s, started %v: the settings copied %d times in all, want %d", version, greeting, started, got, wantSettings)
		}
	}
	apply("1.0", "hi", false, 1, 2)    // install, enable
	apply("1.0", "hello", false, 1, 3) // update
	apply("1.0", "hello", true, 2, 4)  // enable in a fresh start
	apply("1.1", "hello", false, 3, 5) // update to a new version
}
