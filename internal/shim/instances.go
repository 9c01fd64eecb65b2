package shim

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/weftcloud/weft/internal/driver"
)

// Instances is what a driver built on the shim keeps: which directory
// each instance lives in. Embedded in a driver, it provides the
// driver.Driver calls that only read the shim's record.
type Instances struct {
	// Annotate, when set, refines a status read from the shim, e.g. to
	// name an out-of-memory kill.
	Annotate func(id string, st driver.Status) driver.Status

	mu   sync.Mutex
	dirs map[string]string
}

// Add records that instance id lives in dir.
func (r *Instances) Add(id, dir string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirs == nil {
		r.dirs = map[string]string{}
	}
	r.dirs[id] = dir
}

// Forget drops id and returns the directory it lived in.
func (r *Instances) Forget(id string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dir, ok := r.dirs[id]
	delete(r.dirs, id)
	return dir, ok
}

// Dir returns the directory of id, or driver.ErrNotFound.
func (r *Instances) Dir(id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dir, ok := r.dirs[id]
	if !ok {
		return "", driver.ErrNotFound
	}
	return dir, nil
}

func (r *Instances) annotate(id string, st driver.Status) driver.Status {
	if r.Annotate != nil {
		return r.Annotate(id, st)
	}
	return st
}

// Inspect reports the instance's status.
func (r *Instances) Inspect(ctx context.Context, id string) (driver.Status, error) {
	dir, err := r.Dir(id)
	if err != nil {
		return driver.Status{}, err
	}
	st, err := Inspect(dir)
	return r.annotate(id, st), err
}

// Wait blocks until the instance exits or ctx ends.
func (r *Instances) Wait(ctx context.Context, id string) (driver.Status, error) {
	dir, err := r.Dir(id)
	if err != nil {
		return driver.Status{}, err
	}
	st, err := Wait(ctx, dir)
	return r.annotate(id, st), err
}

// Recover adopts an instance a previous agent started in dir, when its
// process still runs.
func (r *Instances) Recover(ctx context.Context, id, dir string) (driver.Status, error) {
	st, err := Inspect(dir)
	if err != nil {
		return driver.Status{}, driver.ErrNotFound
	}
	if !st.Running {
		return driver.Status{}, fmt.Errorf("%w: it exited with code %d (%s)", driver.ErrNotFound, st.ExitCode, st.Reason)
	}
	r.Add(id, dir)
	return st, nil
}

// Logs returns the instance's output.
func (r *Instances) Logs(ctx context.Context, id string, tail int64, follow bool) (io.ReadCloser, error) {
	dir, err := r.Dir(id)
	if err != nil {
		return nil, err
	}
	return Logs(ctx, dir, tail, follow)
}

// StopWith stops the instance as Stop does; an unknown instance is
// already stopped.
func (r *Instances) StopWith(ctx context.Context, id string, grace time.Duration, signal func(pid int, sig syscall.Signal)) error {
	dir, err := r.Dir(id)
	if err != nil {
		return nil
	}
	return Stop(ctx, dir, grace, signal)
}
