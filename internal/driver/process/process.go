// Package process is the process runtime: each instance is an OS process in
// its own process group and working directory, supervised by a `weft shim`
// that outlives the agent, with memory and CPU limits through cgroups (v2, or
// the v1 memory and cpu controllers on hybrid hosts).
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
)

// Config configures the driver.
type Config struct {
	// ShimCommand starts a shim; the driver appends the instance directory.
	// Default: this executable with the argument "shim".
	ShimCommand []string
	// CgroupRoot is the cgroup parent for instances (default "weft"); empty
	// CgroupDisabled turns limits off.
	CgroupParent   string
	CgroupDisabled bool
	Logger         *slog.Logger
}

// Driver runs process instances.
type Driver struct {
	cfg     Config
	log     *slog.Logger
	cgroups *cgroups

	mu   sync.Mutex
	dirs map[string]string // instance ID -> its directory
}

var (
	_ driver.Driver = (*Driver)(nil)
)

// New returns a process driver.
func New(cfg Config) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.ShimCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("process: find own executable for the shim: %w", err)
		}
		cfg.ShimCommand = []string{exe, "shim"}
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "weft"
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, dirs: map[string]string{}}
	if !cfg.CgroupDisabled {
		var err error
		if d.cgroups, err = detectCgroups(cfg.CgroupParent); err != nil {
			d.log.Warn("instances run without memory and CPU limits", "reason", err)
			d.cgroups = nil
		}
	}
	return d, nil
}

// Name is "process".
func (d *Driver) Name() string { return api.RuntimeProcess }

func (d *Driver) dir(id string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, ok := d.dirs[id]
	if !ok {
		return "", driver.ErrNotFound
	}
	return dir, nil
}

// Start starts the instance through a new shim and returns once the child runs.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Status, error) {
	if len(spec.Command) == 0 {
		return driver.Status{}, fmt.Errorf("process: start %s: no command", spec.ID)
	}
	if !filepath.IsAbs(spec.Dir) {
		return driver.Status{}, fmt.Errorf("process: start %s: the instance directory %q is not absolute", spec.ID, spec.Dir)
	}
	for _, f := range []string{pidFile, exitFile} {
		os.Remove(filepath.Join(spec.Dir, f))
	}
	env := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": spec.Dir}
	for k, v := range spec.Env {
		env[k] = v
	}
	ss := shimSpec{Command: spec.Command, Dir: filepath.Join(spec.Dir, "root"), Env: env, LogMax: api.MaxLogBytes}
	if spec.Package == "" {
		ss.Dir = spec.Dir
	}
	if d.cgroups != nil {
		procs, err := d.cgroups.create(spec.ID, spec.CPU, spec.Memory)
		if err != nil {
			return driver.Status{}, fmt.Errorf("process: start %s: %w", spec.ID, err)
		}
		ss.Cgroups = procs
	}
	if err := atomicfile.WriteJSON(filepath.Join(spec.Dir, specFile), ss); err != nil {
		return driver.Status{}, fmt.Errorf("process: start %s: %w", spec.ID, err)
	}
	args := append(append([]string(nil), d.cfg.ShimCommand[1:]...), spec.Dir)
	shim := exec.Command(d.cfg.ShimCommand[0], args...)
	shim.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not in the agent's session or process group
	shim.Dir = spec.Dir
	shim.Env = os.Environ()
	if err := shim.Start(); err != nil {
		return driver.Status{}, fmt.Errorf("process: start shim for %s: %w", spec.ID, err)
	}
	exited := make(chan struct{})
	go func() { shim.Wait(); close(exited) }() // reap it while this agent lives
	d.mu.Lock()
	d.dirs[spec.ID] = spec.Dir
	d.mu.Unlock()

	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if st, err := d.inspectDir(spec.Dir); err == nil && (st.Running || st.Exited) {
			return st, nil
		}
		select {
		case <-exited:
			if st, err := d.inspectDir(spec.Dir); err == nil && (st.Running || st.Exited) {
				return st, nil
			}
			var info exitInfo
			if atomicfile.ReadJSON(filepath.Join(spec.Dir, exitFile), &info) == nil {
				return driver.Status{}, fmt.Errorf("process: start %s: %s", spec.ID, info.Reason)
			}
			return driver.Status{}, fmt.Errorf("process: start %s: the shim exited", spec.ID)
		case <-deadline.C:
			return driver.Status{}, fmt.Errorf("process: start %s: the shim did not start the process within 10s", spec.ID)
		case <-ctx.Done():
			return driver.Status{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// inspectDir reads the shim's files: exited when exit.json exists, running
// when the recorded child is alive (and is the same process).
func (d *Driver) inspectDir(dir string) (driver.Status, error) {
	var info exitInfo
	if err := atomicfile.ReadJSON(filepath.Join(dir, exitFile), &info); err == nil {
		st := driver.Status{Exited: true, ExitCode: info.Code, Reason: info.Reason}
		if info.Code != 0 && d.cgroups != nil && d.cgroups.oomKilled(filepath.Base(dir)) {
			st.Reason = "out of memory"
		}
		return st, nil
	}
	var pids pidInfo
	if err := atomicfile.ReadJSON(filepath.Join(dir, pidFile), &pids); err != nil {
		return driver.Status{}, driver.ErrNotFound
	}
	if !alive(pids.Child, pids.ChildStart) {
		if alive(pids.Shim, pids.ShimStart) {
			// The child just ended and its shim is recording how: not
			// done yet, look again shortly.
			return driver.Status{Running: true, PID: pids.Child}, nil
		}
		// Both gone without a record: the shim was killed too.
		return driver.Status{Exited: true, ExitCode: 137, Reason: "killed (its supervisor died)"}, nil
	}
	fi, _ := os.Stat(filepath.Join(dir, pidFile))
	st := driver.Status{Running: true, PID: pids.Child}
	if fi != nil {
		st.StartedAt = fi.ModTime()
	}
	return st, nil
}

// Inspect reports the instance's status.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	dir, err := d.dir(id)
	if err != nil {
		return driver.Status{}, err
	}
	return d.inspectDir(dir)
}

// Wait blocks until the instance exits or ctx ends.
func (d *Driver) Wait(ctx context.Context, id string) (driver.Status, error) {
	dir, err := d.dir(id)
	if err != nil {
		return driver.Status{}, err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := d.inspectDir(dir)
		if err != nil {
			return st, err
		}
		if !st.Running {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM to the instance's process group, and SIGKILL after grace.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	dir, err := d.dir(id)
	if err != nil {
		return nil
	}
	st, err := d.inspectDir(dir)
	if err != nil || !st.Running {
		return nil
	}
	syscall.Kill(-st.PID, syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if st, _ := d.Wait(wctx, id); !st.Running {
		return nil
	}
	syscall.Kill(-st.PID, syscall.SIGKILL)
	kctx, kcancel := context.WithTimeout(ctx, 5*time.Second)
	defer kcancel()
	if _, err := d.Wait(kctx, id); err != nil {
		return fmt.Errorf("process: stop %s: still running after SIGKILL: %w", id, err)
	}
	return nil
}

// Recover finds an instance a previous agent started in dir.
func (d *Driver) Recover(ctx context.Context, id, dir string) (driver.Status, error) {
	st, err := d.inspectDir(dir)
	if err != nil || !st.Running {
		return driver.Status{}, driver.ErrNotFound
	}
	d.mu.Lock()
	d.dirs[id] = dir
	d.mu.Unlock()
	return st, nil
}

// Remove forgets a stopped instance and deletes its cgroups.
func (d *Driver) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	delete(d.dirs, id)
	d.mu.Unlock()
	if d.cgroups != nil {
		return d.cgroups.remove(id)
	}
	return nil
}

// Logs returns the instance's output.
func (d *Driver) Logs(ctx context.Context, id string, tail int64, follow bool) (io.ReadCloser, error) {
	dir, err := d.dir(id)
	if err != nil {
		return nil, err
	}
	return openLogs(ctx, filepath.Join(dir, logFile), tail, follow, func() bool {
		st, err := d.inspectDir(dir)
		return err == nil && st.Running
	})
}

var errNoCgroups = errors.New("no usable cgroup hierarchy")
