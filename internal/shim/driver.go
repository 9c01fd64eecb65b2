package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/procstat"
)

// Command returns how to start a shim: given when it is set (tests run
// their own binary), else this executable with the argument "shim"
// (`weft shim DIR`).
func Command(given []string) ([]string, error) {
	cmd, err := procstat.Command(given, "shim")
	if err != nil {
		return nil, fmt.Errorf("shim: %w", err)
	}
	return cmd, nil
}

// ReadSpec returns the spec the instance in dir was launched with.
func ReadSpec(dir string) (Spec, error) {
	var spec Spec
	if err := atomicfile.ReadJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return Spec{}, fmt.Errorf("shim: read the spec in %s: %w", dir, err)
	}
	return spec, nil
}

// Launch writes spec to dir, starts a shim on it with shimCommand (DIR is
// appended) in its own session, and returns once the process runs, or the
// reason it did not start.
func Launch(ctx context.Context, shimCommand []string, dir string, spec Spec) (driver.Status, error) {
	if !filepath.IsAbs(dir) {
		return driver.Status{}, fmt.Errorf("the instance directory %q is not absolute", dir)
	}
	for _, f := range []string{pidFile, exitFile} {
		os.Remove(filepath.Join(dir, f))
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, specFile), spec); err != nil {
		return driver.Status{}, err
	}
	args := append(append([]string(nil), shimCommand[1:]...), dir)
	shim := exec.Command(shimCommand[0], args...)
	shim.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not in the agent's session or process group
	shim.Dir = dir
	shim.Env = os.Environ()
	if err := shim.Start(); err != nil {
		return driver.Status{}, fmt.Errorf("start shim: %w", err)
	}
	exited := make(chan struct{})
	go func() { shim.Wait(); close(exited) }() // reap it while this agent lives

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	started := func() (driver.Status, bool, error) {
		st, err := Inspect(dir)
		if err != nil || !(st.Running || st.Exited) {
			return st, false, nil
		}
		if _, err := os.Stat(filepath.Join(dir, pidFile)); err != nil {
			// The shim gave up before the process ran.
			return st, true, errors.New(st.Reason)
		}
		return st, true, nil
	}
	for {
		if st, done, err := started(); done {
			return st, err
		}
		select {
		case <-exited:
			if st, done, err := started(); done {
				return st, err
			}
			return driver.Status{}, fmt.Errorf("the shim exited")
		case <-deadline.C:
			return driver.Status{}, fmt.Errorf("the shim did not start the process within 30s")
		case <-ctx.Done():
			return driver.Status{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Inspect reads the shim's files in dir: exited when the exit is recorded,
// running when the recorded child is alive (and is the same process), and
// driver.ErrNotFound when no shim ever ran there.
func Inspect(dir string) (driver.Status, error) {
	var info exitInfo
	if err := atomicfile.ReadJSON(filepath.Join(dir, exitFile), &info); err == nil {
		return driver.Status{Exited: true, ExitCode: info.Code, Reason: info.Reason}, nil
	}
	var pids pidInfo
	if err := atomicfile.ReadJSON(filepath.Join(dir, pidFile), &pids); err != nil {
		return driver.Status{}, driver.ErrNotFound
	}
	if !procstat.Alive(pids.Child, pids.ChildStart) {
		if procstat.Alive(pids.Shim, pids.ShimStart) {
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

// Wait blocks until the instance in dir exits or ctx ends.
func Wait(ctx context.Context, dir string) (driver.Status, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := Inspect(dir)
		if err != nil || !st.Running {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM through signal, waits up to grace for the instance
// to exit, then sends SIGKILL and waits for the shim to record the end.
// signal gets the child's PID: the process runtime signals its process
// group, the container runtime the container's init.
func Stop(ctx context.Context, dir string, grace time.Duration, signal func(pid int, sig syscall.Signal)) error {
	st, err := Inspect(dir)
	if err != nil || !st.Running {
		return nil
	}
	signal(st.PID, syscall.SIGTERM)
	wctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if st, _ := Wait(wctx, dir); !st.Running {
		return nil
	}
	signal(st.PID, syscall.SIGKILL)
	kctx, kcancel := context.WithTimeout(ctx, 5*time.Second)
	defer kcancel()
	if _, err := Wait(kctx, dir); err != nil {
		return fmt.Errorf("still running after SIGKILL: %w", err)
	}
	return nil
}

// Logs returns the instance's output: the last tail bytes and, with
// follow, what comes until ctx ends or the instance exits.
func Logs(ctx context.Context, dir string, tail int64, follow bool) (io.ReadCloser, error) {
	return openLogs(ctx, filepath.Join(dir, LogFile), tail, follow, func() bool {
		st, err := Inspect(dir)
		return err == nil && st.Running
	})
}
