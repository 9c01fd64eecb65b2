package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/guest"
	"github.com/weftcloud/weft/internal/shim"
)

// guestPath is the PATH a workload gets when its spec sets none.
const guestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Start boots the instance's VM under a new shim and returns once the
// guest agent answers and the workload (spec.Command, when set) has
// started. A VM that does not get that far within ReadyTimeout is killed
// and Start fails with its console's last lines.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Status, error) {
	t0 := time.Now()
	var in *instance
	var launched time.Duration
	for attempt := 1; ; attempt++ {
		began := time.Now()
		var err error
		if in, err = d.launch(ctx, spec, false); err != nil {
			return driver.Status{}, fmt.Errorf("qemu: start %s: %w", spec.ID, err)
		}
		launched = time.Since(began) // this boot's, where "ready" counts them all
		if !in.st.GuestAgent {
			break
		}
		if err = d.ready(ctx, in, spec); err == nil {
			break
		}
		d.kill(in)
		if errors.Is(err, errNoTimer) {
			if attempt < bootAttempts {
				d.log.Warn("the guest booted without a timer; booting it again", "instance", spec.ID, "boot", attempt)
				continue
			}
			err = fmt.Errorf("%d boots: %w", attempt, err)
		}
		return driver.Status{}, fmt.Errorf("qemu: start %s: %w", spec.ID, err)
	}
	d.startWatching(in)
	d.log.Info("VM started", "instance", spec.ID, "launch", launched.Round(time.Millisecond),
		"ready", time.Since(t0).Round(time.Millisecond), "accel", d.Attributes()["vm.accel"])
	st, err := shim.Inspect(in.dir)
	if err != nil {
		return driver.Status{}, fmt.Errorf("qemu: start %s: %w", spec.ID, err)
	}
	return d.explain(in.dir, st), nil
}

// launch prepares the instance's disks and starts QEMU under a shim, and
// registers the instance. With incoming, QEMU waits for a migration.
func (d *Driver) launch(ctx context.Context, spec driver.Spec, incoming bool) (*instance, error) {
	if !filepath.IsAbs(spec.Dir) {
		return nil, fmt.Errorf("the instance directory %q is not absolute", spec.Dir)
	}
	img, err := readImage(spec.ImageDir)
	if err != nil {
		return nil, err
	}
	if !img.VM.GuestAgent && len(spec.Command) > 0 && !incoming {
		return nil, fmt.Errorf("the image %s has no guest agent to run the command", img.Name)
	}
	if !img.VM.GuestAgent && len(spec.Drives) > 0 && !incoming {
		return nil, fmt.Errorf("the image %s has no guest agent to mount the drives", img.Name)
	}
	in := &instance{id: spec.ID, dir: spec.Dir, st: state{
		SocketDir:  socketDir(spec.ID, spec.Dir),
		GuestAgent: img.VM.GuestAgent,
	}}
	if spec.NIC != nil {
		in.st.NICMAC = strings.ToLower(spec.NIC.MAC)
	}
	if len(spec.Disks) == 0 {
		in.st.Overlay = filepath.Join(spec.Dir, overlayName)
	}
	d.mu.Lock()
	old := d.instances[spec.ID]
	for _, dir := range []string{spec.Dir, oldDir(old)} {
		if st, err := shim.Inspect(dir); dir != "" && err == nil && st.Running {
			d.mu.Unlock()
			return nil, errors.New("already running")
		}
	}
	d.instances[spec.ID] = in
	d.mu.Unlock()
	if old != nil {
		old.stopWatching()
		old.closeAgent()
	}

	if err := os.MkdirAll(in.st.SocketDir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []string{filepath.Join(spec.Dir, exitFile), in.qmpSocket(), in.agentSocket()} {
		os.Remove(f)
	}
	b := boot{
		QEMU:        d.cfg.QEMU,
		Machine:     d.machine,
		Kernel:      filepath.Join(spec.ImageDir, api.ImageFileKernel),
		Cmdline:     img.VM.Cmdline,
		Hostname:    spec.ID,
		TSCKHz:      hostTSCKHz(),
		CPUs:        cpus(spec.CPU),
		MemoryMB:    memoryMB(spec.Memory),
		HostFwd:     hostForwards(spec),
		NIC:         spec.NIC,
		QMPSocket:   in.qmpSocket(),
		AgentSocket: in.agentSocket(),
		Incoming:    incoming,
	}
	// An image without a kernel boots from its disk's own bootloader,
	// through the BIOS of a PC.
	if !exists(b.Kernel) {
		b.Kernel, b.Machine.bios = "", true
	}
	if err := checkNIC(spec.NIC, b.Kernel != "", img.VM.GuestAgent); err != nil {
		return nil, err
	}
	if initrd := filepath.Join(spec.ImageDir, api.ImageFileInitrd); exists(initrd) {
		b.Initrd = initrd
	}
	if in.st.Overlay != "" {
		// An ephemeral VM: a fresh overlay over the shared image disk,
		// so that every start begins from the image.
		if err := d.createOverlay(ctx, in.st.Overlay, filepath.Join(spec.ImageDir, api.ImageFileDisk), img.VM.DiskFormat); err != nil {
			return nil, err
		}
		b.Disks = []disk{overlayDisk("os", in.st.Overlay)}
	} else {
		for i, dk := range spec.Disks {
			b.Disks = append(b.Disks, nbdDisk(fmt.Sprintf("disk%d", i), dk))
		}
	}
	for i, dk := range spec.Drives {
		b.Disks = append(b.Disks, driveDisk(i, dk))
	}
	if err := atomicfile.WriteJSON(filepath.Join(spec.Dir, stateFile), in.st); err != nil {
		return nil, err
	}
	args := b.args()
	d.log.Debug("starting VM", "instance", spec.ID, "args", strings.Join(args, " "))
	if _, err := shim.Launch(ctx, d.cfg.ShimCommand, spec.Dir, shim.Spec{Command: args, Dir: spec.Dir, LogMax: api.MaxLogBytes}); err != nil {
		return nil, err
	}
	return in, nil
}

func oldDir(in *instance) string {
	if in == nil {
		return ""
	}
	return in.dir
}

// ready waits for the guest agent, sets the guest's clock and starts the
// workload.
func (d *Driver) ready(ctx context.Context, in *instance, spec driver.Spec) error {
	rctx, cancel := d.whileRunning(ctx, in.dir, d.cfg.ReadyTimeout)
	defer cancel()
	c, err := d.agent(rctx, in)
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(rctx)
		}
		return d.bootFailure(in, err)
	}
	if h, err := c.Ready(rctx); err == nil && h.NoTimer {
		return errNoTimer
	}
	if err := c.SetTime(rctx, time.Now()); err != nil {
		return fmt.Errorf("set the guest's clock: %w", err)
	}
	if spec.NIC != nil {
		if err := awaitNIC(rctx, c, spec.NIC); err != nil {
			return d.bootFailure(in, err)
		}
		// Before the workload, which may reach the peer's networks.
		if len(spec.NIC.Routes) > 0 {
			if err := c.SetRoutes(rctx, in.st.NICMAC, spec.NIC.Routes, spec.NIC.Via); err != nil {
				return fmt.Errorf("the VPN's routes: %w", err)
			}
		}
	}
	for i, dk := range spec.Drives {
		if err := c.Mount(rctx, driveSerial(i), dk.Mount); err != nil {
			return fmt.Errorf("mount drive %s: %w", dk.Name, err)
		}
	}
	if len(spec.Command) == 0 {
		return nil
	}
	env := map[string]string{"PATH": guestPath}
	for k, v := range spec.Env {
		env[k] = v
	}
	if err := c.Start(rctx, guest.Workload{Cmd: spec.Command, Env: env}); err != nil {
		return fmt.Errorf("start the workload: %w", err)
	}
	return nil
}

// whileRunning returns a context that ends after timeout, with ctx, or
// as soon as the shim records that QEMU exited.
func (d *Driver) whileRunning(ctx context.Context, dir string, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the guest agent did not answer within %v", timeout))
	ctx, cancelCause := context.WithCancelCause(ctx)
	go func() {
		st, err := shim.Wait(ctx, dir)
		if err == nil && !st.Running {
			cancelCause(errVMExited)
		}
	}()
	return ctx, func() { cancelCause(nil); cancel() }
}

var errVMExited = errors.New("QEMU exited")

// errNoTimer is a guest that booted without a timer interrupt source
// (guest.Hello.NoTimer): its local APIC timer's calibration failed, which
// a loaded host can cause in software emulation. Start boots it again, up
// to bootAttempts times in all.
var errNoTimer = errors.New("the guest booted without a timer interrupt source (its local APIC timer's calibration failed)")

const bootAttempts = 3

// bootFailure explains why the guest did not become ready: QEMU's exit, or
// the wait's cause, with the end of the console.
func (d *Driver) bootFailure(in *instance, err error) error {
	// The guest agent's connection closes as QEMU exits, maybe before the
	// shim has recorded the exit: it is given a moment to.
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if st, ierr := shim.Wait(wctx, in.dir); ierr == nil && st.Exited {
		st = d.explain(in.dir, st)
		return fmt.Errorf("the VM exited before its guest agent answered: %s", st.Reason)
	}
	return fmt.Errorf("%w; the console ends with: %s", err, consoleTail(in.dir, 5))
}

// consoleTail returns the last n lines of the instance's log, joined by " | ".
func consoleTail(dir string, n int) string {
	data, _ := os.ReadFile(filepath.Join(dir, shim.LogFile))
	lines := splitNonEmpty(string(data))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(nothing)"
	}
	return strings.Join(lines, " | ")
}

// kill ends QEMU at once and waits for the shim to record it.
func (d *Driver) kill(in *instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shim.Stop(ctx, in.dir, 0, func(pid int, sig syscall.Signal) { syscall.Kill(pid, syscall.SIGKILL) })
	in.closeAgent()
}

// createOverlay replaces path with a qcow2 file backed by base (in
// format: "raw" or "qcow2"), which it never writes to.
func (d *Driver) createOverlay(ctx context.Context, path, base, format string) error {
	if format == "" {
		format = "raw"
	}
	if !exists(base) {
		return fmt.Errorf("the image has no disk: %s", base)
	}
	os.Remove(path)
	out, err := exec.CommandContext(ctx, d.cfg.QEMUImg, "create", "-q", "-f", "qcow2", "-F", format, "-b", base, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create the overlay disk: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// readImage reads the cached image's record and checks its files.
func readImage(dir string) (api.Image, error) {
	var img api.Image
	if dir == "" {
		return img, errors.New("no image")
	}
	if err := atomicfile.ReadJSON(filepath.Join(dir, api.ImageMetaFile), &img); err != nil {
		return img, fmt.Errorf("read the image: %w", err)
	}
	if img.Type != "" && img.Type != api.ImageVM {
		return img, fmt.Errorf("image %s is a %s image, not a vm image", img.Name, img.Type)
	}
	if img.VM == nil {
		img.VM = &api.VMImageConfig{DiskFormat: "raw"}
	}
	return img, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
