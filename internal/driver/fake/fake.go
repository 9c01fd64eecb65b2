// Package fake is a runtime driver that runs nothing: an instance is
// running from the moment Start returns until Stop, and exits only when
// stopped. The fleet harness (cmd/weft-fleet) runs the real node agent over
// it, so that a thousand nodes fit in one process and only the runtime is
// simulated.
package fake

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/internal/driver"
)

// Driver is a fake runtime. The zero value is not usable: use New.
type Driver struct {
	name string

	mu    sync.Mutex
	insts map[string]*instance
}

type instance struct {
	status driver.Status
	exited chan struct{} // closed by Stop
}

var _ driver.Driver = (*Driver)(nil)

// New returns a driver that offers runtime name ("process", "container"
// or "vm"): the controller places on a node only roles of the runtimes its
// drivers name.
func New(name string) *Driver {
	return &Driver{name: name, insts: map[string]*instance{}}
}

// Name is the runtime the driver stands in for.
func (d *Driver) Name() string { return d.name }

// Start marks the instance running.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if in, ok := d.insts[spec.ID]; ok && in.status.Running {
		return driver.Status{}, fmt.Errorf("fake: start %s: already running", spec.ID)
	}
	in := &instance{status: driver.Status{Running: true, StartedAt: time.Now()}, exited: make(chan struct{})}
	d.insts[spec.ID] = in
	return in.status, nil
}

// Wait returns once the instance was stopped, or ctx ended.
func (d *Driver) Wait(ctx context.Context, id string) (driver.Status, error) {
	d.mu.Lock()
	in, ok := d.insts[id]
	d.mu.Unlock()
	if !ok {
		return driver.Status{}, fmt.Errorf("fake: wait %s: %w", id, driver.ErrNotFound)
	}
	select {
	case <-in.exited:
		d.mu.Lock()
		defer d.mu.Unlock()
		return in.status, nil
	case <-ctx.Done():
		return driver.Status{}, ctx.Err()
	}
}

// Stop ends the instance at once, whatever the grace.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.insts[id]
	if !ok || !in.status.Running {
		return nil
	}
	in.status = driver.Status{StartedAt: in.status.StartedAt, Exited: true, ExitCode: 0, Reason: "stopped"}
	close(in.exited)
	return nil
}

// Inspect reports the instance's status.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.insts[id]
	if !ok {
		return driver.Status{}, fmt.Errorf("fake: inspect %s: %w", id, driver.ErrNotFound)
	}
	return in.status, nil
}

// Recover finds nothing: a fake instance does not outlive its process.
func (d *Driver) Recover(ctx context.Context, id, dir string) (driver.Status, error) {
	return driver.Status{}, fmt.Errorf("fake: recover %s: %w", id, driver.ErrNotFound)
}

// Remove forgets the instance.
func (d *Driver) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.insts, id)
	return nil
}

// Logs is empty: nothing runs to write any.
func (d *Driver) Logs(ctx context.Context, id string, tail int64, follow bool) (io.ReadCloser, error) {
	d.mu.Lock()
	_, ok := d.insts[id]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("fake: logs %s: %w", id, driver.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader("")), nil
}
