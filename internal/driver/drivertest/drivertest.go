// Package drivertest is the conformance suite every runtime driver passes:
// the process runtime now, the container and vm runtimes with the same
// tests. A runtime says how to express a few test programs; the suite checks
// the driver.Driver contract with them.
package drivertest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/driver"
)

// Program is a behaviour the suite needs a runtime to run.
type Program int

const (
	// Serve prints "started", then its environment, then runs until stopped.
	Serve Program = iota
	// Exit3 prints "bye" and exits with code 3.
	Exit3
	// IgnoreTerm prints "ready" and ignores SIGTERM (only SIGKILL stops it).
	IgnoreTerm
	// Hog allocates far more memory than its 32 MiB limit.
	Hog
	// Busy writes a 4 MiB file named blob in its working folder, holds
	// 16 MiB or more of memory, prints "ready" and keeps a CPU busy until
	// stopped; it runs with a 128 MiB memory limit and half a CPU.
	Busy
)

// Runtime adapts the suite to one driver.
type Runtime struct {
	// New returns a driver; called again to simulate an agent restart.
	New func(t *testing.T) driver.Driver
	// Spec returns a spec that runs prog, for instance id in dir.
	Spec func(t *testing.T, id, dir string, prog Program) driver.Spec
	// Limits reports whether memory limits are enforced on this host.
	Limits bool
	// Busy reports whether Spec runs the Busy program (the Figures test
	// needs it).
	Busy bool
	// Skip names tests (as in Run: "MemoryLimit", ...) that do not apply
	// to the runtime, with the reason.
	Skip map[string]string
}

// Run runs the suite.
func Run(t *testing.T, rt Runtime) {
	tests := []struct {
		name string
		run  func(*testing.T, Runtime)
	}{
		{"ExitCode", testExitCode},
		{"EnvAndLogs", testEnvAndLogs},
		{"StopKillsAfterGrace", testStopKillsAfterGrace},
		{"RecoverAfterRestart", testRecover},
		{"MemoryLimit", testMemoryLimit},
		{"Figures", testFigures},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if reason, ok := rt.Skip[tc.name]; ok {
				t.Skip(reason)
			}
			tc.run(t, rt)
		})
	}
}

func start(t *testing.T, rt Runtime, d driver.Driver, id string, prog Program) driver.Spec {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := rt.Spec(t, id, dir, prog)
	if _, err := d.Start(context.Background(), spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		d.Stop(context.Background(), id, time.Second)
		d.Remove(context.Background(), id)
	})
	return spec
}

func wait(t *testing.T, d driver.Driver, id string) driver.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := d.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

func logs(t *testing.T, d driver.Driver, id string) string {
	t.Helper()
	rc, err := d.Logs(context.Background(), id, 0, false)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return string(data)
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testExitCode(t *testing.T, rt Runtime) {
	d := rt.New(t)
	start(t, rt, d, "exit3", Exit3)
	st := wait(t, d, "exit3")
	if st.Running || !st.Exited || st.ExitCode != 3 {
		t.Errorf("status after exit: %+v, want exited with code 3", st)
	}
	if got := logs(t, d, "exit3"); !strings.Contains(got, "bye") {
		t.Errorf("logs %q lack the program's output", got)
	}
}

func testEnvAndLogs(t *testing.T, rt Runtime) {
	d := rt.New(t)
	spec := start(t, rt, d, "serve", Serve)
	// The program prints its environment a line at a time, and a VM's
	// console may deliver it in pieces: wait for all of it.
	var missing []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := logs(t, d, "serve")
		missing = missing[:0]
		for k, v := range spec.Env {
			if !strings.Contains(out, k+"="+v) {
				missing = append(missing, k+"="+v)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, kv := range missing {
		t.Errorf("the instance does not see %s", kv)
	}
	rc, err := d.Logs(context.Background(), "serve", 8, false)
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(rc)
	rc.Close()
	if len(tail) != 8 {
		t.Errorf("tail 8 returned %d bytes", len(tail))
	}
	// Follow ends when the instance stops.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	follow, err := d.Logs(ctx, "serve", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	go d.Stop(context.Background(), "serve", 5*time.Second)
	if _, err := io.ReadAll(follow); err != nil {
		t.Errorf("follow: %v", err)
	}
	if ctx.Err() != nil {
		t.Error("following logs did not end when the instance stopped")
	}
}

func testStopKillsAfterGrace(t *testing.T, rt Runtime) {
	d := rt.New(t)
	start(t, rt, d, "stubborn", IgnoreTerm)
	eventually(t, "the program to be ready", func() bool { return strings.Contains(logs(t, d, "stubborn"), "ready") })
	t0 := time.Now()
	if err := d.Stop(context.Background(), "stubborn", 300*time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(t0); took < 300*time.Millisecond {
		t.Errorf("Stop returned after %s, before the grace period ended", took)
	}
	st, err := d.Inspect(context.Background(), "stubborn")
	if err != nil || st.Running {
		t.Errorf("after Stop: %+v, %v; want not running", st, err)
	}
	if err := d.Stop(context.Background(), "stubborn", time.Second); err != nil {
		t.Errorf("stopping a stopped instance: %v", err)
	}
}

func testRecover(t *testing.T, rt Runtime) {
	d := rt.New(t)
	spec := start(t, rt, d, "survivor", Serve)
	before, err := d.Inspect(context.Background(), "survivor")
	if err != nil || !before.Running {
		t.Fatalf("Inspect: %+v, %v", before, err)
	}
	// A new driver, as after an agent restart, finds the same running instance.
	d2 := rt.New(t)
	st, err := d2.Recover(context.Background(), "survivor", spec.Dir)
	if err != nil || !st.Running {
		t.Fatalf("Recover: %+v, %v", st, err)
	}
	if before.PID != 0 && st.PID != before.PID {
		t.Errorf("recovered PID %d, started %d", st.PID, before.PID)
	}
	if err := d2.Stop(context.Background(), "survivor", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Recover(context.Background(), "survivor", spec.Dir); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Recover of a stopped instance: %v, want ErrNotFound", err)
	}
}

func testMemoryLimit(t *testing.T, rt Runtime) {
	if !rt.Limits {
		t.Skip("memory limits are not enforced on this host (no usable cgroup)")
	}
	d := rt.New(t)
	start(t, rt, d, "hog", Hog)
	st := wait(t, d, "hog")
	if st.ExitCode == 0 {
		t.Errorf("the hog exited cleanly: %+v; its memory limit was not enforced", st)
	}
	if !strings.Contains(st.Reason, "memory") && !strings.Contains(st.Reason, "killed") {
		t.Errorf("reason %q does not say it was killed", st.Reason)
	}
}

// testFigures checks driver.GuestMonitor on a runtime that reads an
// instance's figures from its cgroup: its memory, its limits, its disk
// and, between two samples, its CPU.
func testFigures(t *testing.T, rt Runtime) {
	if !rt.Busy {
		t.Skip("the runtime runs no Busy program")
	}
	if !rt.Limits {
		t.Skip("no usable cgroup on this host to read figures from")
	}
	d := rt.New(t)
	mon, ok := d.(driver.GuestMonitor)
	if !ok {
		t.Fatalf("the %s driver has no GuestFigures", d.Name())
	}
	start(t, rt, d, "busy", Busy)
	eventually(t, "the busy program to be ready", func() bool { return strings.Contains(logs(t, d, "busy"), "ready") })
	ctx := context.Background()
	f, err := mon.GuestFigures(ctx, "busy")
	if err != nil {
		t.Fatalf("GuestFigures: %v", err)
	}
	if f.MemoryUsed < 16<<20 || f.MemoryTotal != 128<<20 {
		t.Errorf("memory %d of %d; want 16 MiB or more of 128 MiB", f.MemoryUsed, f.MemoryTotal)
	}
	if f.CPUs != 1 {
		t.Errorf("%d CPUs; half a CPU rounds up to 1", f.CPUs)
	}
	if f.DiskUsed < 4<<20 || f.DiskTotal < f.DiskUsed {
		t.Errorf("disk %d of %d; want the 4 MiB blob and more", f.DiskUsed, f.DiskTotal)
	}
	if f.SampledAt.IsZero() {
		t.Error("no sampling time")
	}
	eventually(t, "a sample with CPU time in it", func() bool {
		f, err := mon.GuestFigures(ctx, "busy")
		return err == nil && f.CPUPercent > 0 && f.CPUPercent <= 100
	})
	d.Stop(ctx, "busy", time.Second)
	d.Remove(ctx, "busy")
	if _, err := mon.GuestFigures(ctx, "busy"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("GuestFigures of a removed instance: %v, want driver.ErrNotFound", err)
	}
}
