package fake

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/driver"
)

// TestLifecycle checks the parts of the driver contract the agent relies
// on: running from Start, Wait returning at Stop, a second Start refused
// while running, unknown IDs reported as driver.ErrNotFound.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	d := New("process")
	if d.Name() != "process" {
		t.Fatalf("Name() = %q", d.Name())
	}
	if _, err := d.Start(ctx, driver.Spec{ID: "i1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Start(ctx, driver.Spec{ID: "i1"}); err == nil {
		t.Error("a second Start of a running instance succeeded")
	}
	if st, err := d.Inspect(ctx, "i1"); err != nil || !st.Running {
		t.Fatalf("Inspect = %+v, %v; want running", st, err)
	}
	waited := make(chan driver.Status, 1)
	go func() { st, _ := d.Wait(ctx, "i1"); waited <- st }()
	select {
	case <-waited:
		t.Fatal("Wait returned before Stop")
	case <-time.After(50 * time.Millisecond):
	}
	if err := d.Stop(ctx, "i1", time.Second); err != nil {
		t.Fatal(err)
	}
	if st := <-waited; st.Running || !st.Exited {
		t.Errorf("Wait after Stop = %+v, want exited", st)
	}
	if err := d.Stop(ctx, "i1", 0); err != nil {
		t.Errorf("Stop of a stopped instance: %v", err)
	}
	if _, err := d.Start(ctx, driver.Spec{ID: "i1"}); err != nil {
		t.Errorf("Start after Stop: %v", err)
	}
	if err := d.Remove(ctx, "i1"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Inspect": func() error { _, err := d.Inspect(ctx, "i1"); return err }(),
		"Wait":    func() error { _, err := d.Wait(ctx, "i1"); return err }(),
		"Recover": func() error { _, err := d.Recover(ctx, "i1", t.TempDir()); return err }(),
		"Logs":    func() error { _, err := d.Logs(ctx, "i1", 0, false); return err }(),
	} {
		if !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("%s of a removed instance: %v, want driver.ErrNotFound", name, err)
		}
	}
}
