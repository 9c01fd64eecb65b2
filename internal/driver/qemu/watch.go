package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/guest"
	"github.com/weftcloud/weft/internal/qmp"
	"github.com/weftcloud/weft/internal/shim"
)

// startWatching starts the instance's watcher: every second it asks the
// guest agent about the workload, and ends the VM when the workload has
// exited or the agent has stopped answering. It ends by itself when QEMU
// exits, or with stopWatching.
func (d *Driver) startWatching(in *instance) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	in.mu.Lock()
	in.watch, in.done = cancel, done
	in.mu.Unlock()
	go func() {
		defer close(done)
		d.watchLoop(ctx, in)
	}()
}

// stopWatching stops the watcher and waits for it to end. A watcher that
// is already powering the VM off finishes that first.
func (in *instance) stopWatching() {
	in.mu.Lock()
	cancel, done := in.watch, in.done
	in.watch, in.done = nil, nil
	in.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (d *Driver) watchLoop(ctx context.Context, in *instance) {
	tick := time.NewTicker(pingEvery)
	defer tick.Stop()
	lastAnswer := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if st, err := shim.Inspect(in.dir); err != nil || !st.Running {
			return
		}
		if !in.st.GuestAgent {
			continue
		}
		ws, err := d.workloadStatus(ctx, in)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			silent := time.Since(lastAnswer)
			if silent >= d.unresponsiveAfter() {
				d.log.Warn("the guest agent stopped answering; killing the VM", "instance", in.id, "err", err,
					"silentFor", silent.Round(time.Second), "lastHeard", in.lastHeard(), "port", d.agentPortState(in),
					"console", consoleTail(in.dir, 8))
				d.record(in, exitRecord{Code: 128 + int(syscall.SIGKILL), Reason: "guest agent stopped answering"})
				d.kill(in)
				return
			}
			continue
		}
		lastAnswer = time.Now()
		if rec, exited := workloadExit(ws); exited {
			d.log.Info("the workload exited; stopping the VM", "instance", in.id, "exit", rec.Reason)
			d.record(in, rec)
			if err := d.stopVM(context.Background(), in, exitGrace); err != nil {
				d.log.Warn("stop the VM", "instance", in.id, "err", err)
			}
			in.closeAgent()
			return
		}
	}
}

// workloadStatus asks the guest agent, connecting to it when needed, with
// a few seconds' patience.
func (d *Driver) workloadStatus(ctx context.Context, in *instance) (guest.WorkloadStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := d.agent(ctx, in)
	if err != nil {
		return guest.WorkloadStatus{}, err
	}
	return c.Status(ctx)
}

// workloadExit reports whether the workload has exited at least once (the
// guest agent restarts it, so it may be running again), and how.
func workloadExit(ws guest.WorkloadStatus) (exitRecord, bool) {
	if ws.LastExit == "" || (ws.Running && ws.Restarts == 0) {
		return exitRecord{}, false
	}
	return exitRecord{Code: exitCode(ws.LastExit), Reason: ws.LastExit}, true
}

// exitCode reads the code out of the guest agent's description of an exit
// ("exited with code 3", "killed by signal 9"), as a shell would report it.
func exitCode(desc string) int {
	if s, ok := strings.CutPrefix(desc, "exited with code "); ok {
		if n, err := strconv.Atoi(s); err == nil {
			return n
		}
	}
	if s, ok := strings.CutPrefix(desc, "killed by signal "); ok {
		if n, err := strconv.Atoi(s); err == nil {
			return 128 + n
		}
	}
	return 1 // it could not even start: "start: ..."
}

// record keeps the first reason the driver had to end the instance.
func (d *Driver) record(in *instance, rec exitRecord) {
	path := filepath.Join(in.dir, exitFile)
	if _, err := os.Stat(path); err == nil {
		return
	}
	if err := atomicfile.WriteJSON(path, rec); err != nil {
		d.log.Warn("record the exit", "instance", in.id, "err", err)
	}
}

// Stop powers the VM off: through the guest agent when it answers (which
// stops the workload and syncs the disks first), else with an ACPI power
// button press; after grace it kills QEMU. Stopping a stopped instance, or
// one the driver does not know, is not an error.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	in, err := d.lookup(id)
	if err != nil {
		return nil
	}
	in.stopWatching()
	defer in.closeAgent()
	if err := d.stopVM(ctx, in, grace); err != nil {
		return fmt.Errorf("qemu: stop %s: %w", id, err)
	}
	return nil
}

// stopVM asks the guest to power off, and kills QEMU after grace.
func (d *Driver) stopVM(ctx context.Context, in *instance, grace time.Duration) error {
	powerOff, cancel := context.WithCancel(context.Background())
	defer cancel()
	return shim.Stop(ctx, in.dir, grace, func(pid int, sig syscall.Signal) {
		if sig == syscall.SIGKILL {
			syscall.Kill(pid, syscall.SIGKILL)
			return
		}
		// Asynchronous: shim.Stop keeps time, and the guest answers a
		// shutdown only once its workload has stopped.
		go d.powerOff(powerOff, in, grace)
	})
}

func (d *Driver) powerOff(ctx context.Context, in *instance, grace time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, grace+time.Second)
	defer cancel()
	if in.st.GuestAgent {
		actx, acancel := context.WithTimeout(ctx, min(grace, time.Second))
		c, err := d.agent(actx, in)
		acancel()
		if err == nil {
			if err = c.Shutdown(ctx, false); err == nil || ctx.Err() != nil {
				return
			}
		}
		d.log.Debug("the guest agent did not take the shutdown; pressing the power button", "instance", in.id, "err", err)
	}
	err := d.qmp(ctx, in, func(q *qmp.Client) error { return q.SystemPowerdown(ctx) })
	if err != nil && !errors.Is(err, context.Canceled) {
		d.log.Debug("power button", "instance", in.id, "err", err)
	}
}

// Recover finds a VM an earlier agent started in dir and resumes watching
// it; it connects to the guest agent in the background. It returns
// driver.ErrNotFound when QEMU no longer runs, and also when it only holds
// what a migration left: a source whose VM moved away, or a destination
// whose migration never finished. Those it ends.
func (d *Driver) Recover(ctx context.Context, id, dir string) (driver.Status, error) {
	st, err := shim.Inspect(dir)
	if err != nil || !st.Running {
		return driver.Status{}, driver.ErrNotFound
	}
	var s state
	if err := atomicfile.ReadJSON(filepath.Join(dir, stateFile), &s); err != nil {
		return driver.Status{}, fmt.Errorf("qemu: recover %s: %w", id, err)
	}
	in := &instance{id: id, dir: dir, st: s}
	var vm qmp.Status
	err = d.qmp(ctx, in, func(q *qmp.Client) error {
		vm, err = q.QueryStatus(ctx)
		return err
	})
	if err != nil {
		// QEMU runs but its monitor does not answer; the watcher decides.
		d.log.Warn("recovered a VM whose monitor does not answer", "instance", id, "err", err)
	}
	switch vm.Status {
	case "postmigrate":
		d.record(in, exitRecord{Code: 0, Reason: ReasonMigrated})
		d.kill(in)
		return driver.Status{}, driver.ErrNotFound
	case "inmigrate":
		d.kill(in)
		return driver.Status{}, driver.ErrNotFound
	}
	d.mu.Lock()
	old := d.instances[id]
	d.instances[id] = in
	d.mu.Unlock()
	if old != nil {
		old.stopWatching()
		old.closeAgent()
	}
	d.startWatching(in)
	return st, nil
}
