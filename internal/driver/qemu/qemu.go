// Package qemu is the vm runtime: each instance is a QEMU virtual machine
// booted straight into the image's kernel, supervised by a `weft shim` that
// outlives the agent, with the image's guest agent (internal/guest) inside.
//
// The driver talks to QEMU over QMP (internal/qmp) and to the guest agent
// over a virtio-serial port whose host end is a unix socket. An instance
// lives as long as its workload: a watcher pings the guest agent every
// second and powers the VM off when the workload exits, recording the
// workload's exit code, so that Inspect and Wait report what the
// workload did, as for the other runtimes. The serial console goes to the
// shim's log, so Logs shows the boot and the workload's output.
//
// An instance without disks in its spec (a VM role's instance) boots from a
// throwaway qcow2 overlay of the image's disk, made anew on every Start. A
// persistent instance boots from spec.Disks[0], which the node agent serves
// over NBD, and sees the rest as data disks.
//
// Files in the instance directory, besides the shim's: vm.json (where the
// sockets are, the overlay), vm-exit.json (how the workload ended, when the
// driver stopped the VM for it), os.qcow2 (the overlay), qmp.sock and
// agent.sock (unless the directory's path is too long for a socket).
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/guest"
	"github.com/weftcloud/weft/internal/qmp"
	"github.com/weftcloud/weft/internal/shim"
)

// Files the driver keeps in an instance's directory.
const (
	stateFile       = "vm.json"
	exitFile        = "vm-exit.json"
	overlayName     = "os.qcow2"
	qmpSocketName   = "qmp.sock"
	agentSocketName = "agent.sock"
)

// Timings of the watcher.
const (
	pingEvery = time.Second
	// unresponsiveAfter is how long the guest agent may stay silent before
	// the driver gives the VM up for hung and kills it, with KVM; four
	// times that in software emulation (Driver.unresponsiveAfter).
	unresponsiveAfter = 15 * time.Second
	// exitGrace is how long a VM whose workload exited has to power off.
	exitGrace = 10 * time.Second
)

// Config configures the driver.
type Config struct {
	// ShimCommand starts a shim; the driver appends the instance directory.
	// Default: this executable with the argument "shim".
	ShimCommand []string
	// QEMU is the emulator (default "qemu-system-x86_64"); QEMUImg makes
	// overlays (default "qemu-img"). Both are looked up in PATH.
	QEMU    string
	QEMUImg string
	Logger  *slog.Logger
	// ReadyTimeout bounds how long Start waits for the guest agent to
	// answer after QEMU started (default 60 s with KVM, 2 min in software
	// emulation: there a boot on a loaded host took 45 s).
	ReadyTimeout time.Duration
	// Accel forces "kvm" or "tcg"; by default KVM is used when /dev/kvm
	// can be opened for reading and writing and QEMU runs a CPU with it
	// (New tries, which takes a fraction of a second).
	Accel string
}

// Driver runs vm instances.
type Driver struct {
	cfg     Config
	log     *slog.Logger
	machine machine

	mu        sync.Mutex
	instances map[string]*instance
	guests    func(id string) http.Handler // ServeGuests'
}

var (
	_ driver.Driver       = (*Driver)(nil)
	_ driver.Execer       = (*Driver)(nil)
	_ driver.Describer    = (*Driver)(nil)
	_ driver.Copier       = (*Driver)(nil)
	_ driver.GuestServer  = (*Driver)(nil)
	_ driver.GuestMonitor = (*Driver)(nil)
	_ driver.Router       = (*Driver)(nil)
)

// New returns a vm driver, or an error when QEMU or qemu-img is not
// installed, or KVM is asked for and does not work.
func New(cfg Config) (*Driver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if cfg.ShimCommand, err = shim.Command(cfg.ShimCommand); err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.QEMUImg == "" {
		cfg.QEMUImg = "qemu-img"
	}
	for _, p := range []*string{&cfg.QEMU, &cfg.QEMUImg} {
		path, err := exec.LookPath(*p)
		if err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
		*p = path
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, instances: map[string]*instance{}}
	switch cfg.Accel {
	case "", "kvm":
		if cfg.Accel == "" && !kvmUsable() {
			break
		}
		model, err := probeKVM(context.Background(), cfg.QEMU)
		if err != nil {
			if cfg.Accel == "kvm" {
				return nil, fmt.Errorf("qemu: KVM does not work here: %w", err)
			}
			d.log.Warn("/dev/kvm is there but QEMU cannot use it; VMs run in software emulation", "err", err)
			break
		}
		d.machine = machine{kvm: true, cpu: model}
	case "tcg":
	default:
		return nil, fmt.Errorf("qemu: unknown accelerator %q (kvm or tcg)", cfg.Accel)
	}
	if d.cfg.ReadyTimeout <= 0 {
		d.cfg.ReadyTimeout = 60 * time.Second
		if !d.machine.kvm {
			d.cfg.ReadyTimeout *= 2
		}
	}
	return d, nil
}

// Name is "vm".
func (d *Driver) Name() string { return api.RuntimeVM }

// Attributes says how VMs run here: {"vm.accel": "kvm"} with hardware
// virtualization, {"vm.accel": "tcg"} in software emulation (about ten
// times slower).
func (d *Driver) Attributes() map[string]string {
	if d.machine.kvm {
		return map[string]string{"vm.accel": "kvm"}
	}
	return map[string]string{"vm.accel": "tcg"}
}

// unresponsiveAfter is how long a guest agent may stay silent here. Under
// emulation a guest on a loaded host went 16 s without answering, busy
// (make test beside two busy loops, load ~28), and was killed as hung.
func (d *Driver) unresponsiveAfter() time.Duration {
	if d.machine.kvm {
		return unresponsiveAfter
	}
	return 4 * unresponsiveAfter
}

// state is what the driver records in vm.json to find an instance again.
type state struct {
	SocketDir  string `json:"socketDir"`
	Overlay    string `json:"overlay,omitempty"`
	GuestAgent bool   `json:"guestAgent"`
	// NICMAC is the MAC of the VM's interface on its virtual network
	// (driver.NIC), whose routes SetRoutes sets.
	NICMAC string `json:"nicMac,omitempty"`
}

// exitRecord is how an instance ended when the driver ended it.
type exitRecord struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// instance is a VM the driver knows.
type instance struct {
	id, dir string
	st      state

	connMu sync.Mutex // held while connecting to the guest agent
	mu     sync.Mutex
	agent  *guest.Client // nil until connected
	watch  context.CancelFunc
	done   chan struct{} // closed when the watcher ends; nil without one
}

func (in *instance) qmpSocket() string   { return filepath.Join(in.st.SocketDir, qmpSocketName) }
func (in *instance) agentSocket() string { return filepath.Join(in.st.SocketDir, agentSocketName) }

func (d *Driver) lookup(id string) (*instance, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, ok := d.instances[id]
	if !ok {
		return nil, driver.ErrNotFound
	}
	return in, nil
}

// Inspect reports the instance's status: QEMU's, as the shim recorded it,
// with the workload's exit when the driver stopped the VM for it.
func (d *Driver) Inspect(ctx context.Context, id string) (driver.Status, error) {
	in, err := d.lookup(id)
	if err != nil {
		return driver.Status{}, err
	}
	st, err := shim.Inspect(in.dir)
	return d.explain(in.dir, st), err
}

// Wait blocks until the instance's VM has exited or ctx ends.
func (d *Driver) Wait(ctx context.Context, id string) (driver.Status, error) {
	in, err := d.lookup(id)
	if err != nil {
		return driver.Status{}, err
	}
	st, err := shim.Wait(ctx, in.dir)
	return d.explain(in.dir, st), err
}

// explain overlays what the shim knows of QEMU's exit with why it exited.
func (d *Driver) explain(dir string, st driver.Status) driver.Status {
	if !st.Exited {
		return st
	}
	var rec exitRecord
	switch {
	case atomicfile.ReadJSON(filepath.Join(dir, exitFile), &rec) == nil:
		st.ExitCode, st.Reason = rec.Code, rec.Reason
	case st.ExitCode == 0:
		// -no-reboot: a guest that rebooted or panicked (panic=-1 reboots)
		// ends QEMU as cleanly as one that powered off.
		st.Reason = "guest powered off"
		if line := kernelPanic(dir); line != "" {
			st.Reason = "guest kernel panic: " + line
		}
	case st.ExitCode > 0 && st.ExitCode < 128:
		// QEMU failed: its complaint is the last thing it printed.
		if line := lastQEMULine(dir, filepath.Base(d.cfg.QEMU)); line != "" {
			st.Reason = line
		}
	}
	return st
}

// kernelPanic returns the guest kernel's panic message when the log ends
// with the kernel's output of a panic, or "".
func kernelPanic(dir string) string {
	const marker = "Kernel panic - not syncing"
	lines := logLines(dir)
	for i := len(lines) - 1; i >= 0 && i >= len(lines)-100; i-- {
		if j := strings.Index(lines[i], marker); j >= 0 {
			return lines[i][j:]
		}
		if !strings.HasPrefix(lines[i], "[") {
			return "" // not the kernel's (timestamped) output: the panic is older, if any
		}
	}
	return ""
}

// lastQEMULine returns the last error QEMU printed (its messages start
// with its name), or else the last line of the log.
func lastQEMULine(dir, name string) string {
	line := lastLogLine(dir, 20, func(l string) bool { return strings.HasPrefix(l, name+":") && !strings.Contains(l, "warning:") })
	if line == "" {
		line = lastLogLine(dir, 1, func(string) bool { return true })
	}
	return line
}

// lastLogLine returns the last line among the last n lines of the
// instance's log that match reports, or "".
func lastLogLine(dir string, n int, match func(string) bool) string {
	lines := logLines(dir)
	for i := len(lines) - 1; i >= 0 && i >= len(lines)-n; i-- {
		if match(lines[i]) {
			return lines[i]
		}
	}
	return ""
}

// Logs returns the VM's serial console and QEMU's own messages.
func (d *Driver) Logs(ctx context.Context, id string, tail int64, follow bool) (io.ReadCloser, error) {
	in, err := d.lookup(id)
	if err != nil {
		return nil, err
	}
	return shim.Logs(ctx, in.dir, tail, follow)
}

// Exec runs cmd in the guest through its agent and returns its exit code.
// ctx's deadline also bounds the command in the guest.
func (d *Driver) Exec(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (int, error) {
	c, err := d.running(ctx, id, "exec")
	if err != nil {
		return -1, err
	}
	code, err := c.Exec(ctx, cmd, nil, stdout, stderr)
	if err != nil {
		return code, fmt.Errorf("qemu: exec in %s: %w", id, err)
	}
	return code, nil
}

// running returns the guest agent connection of a running instance.
func (d *Driver) running(ctx context.Context, id, what string) (*guest.Client, error) {
	in, err := d.lookup(id)
	if err != nil {
		return nil, err
	}
	if st, err := shim.Inspect(in.dir); err != nil || !st.Running {
		return nil, fmt.Errorf("qemu: %s in %s: the VM is not running", what, id)
	}
	c, err := d.agent(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("qemu: %s in %s: %w", what, id, err)
	}
	return c, nil
}

// CopyIn copies src on the node to dst in the guest, through its agent.
func (d *Driver) CopyIn(ctx context.Context, id, src, dst string) error {
	c, err := d.running(ctx, id, "copy")
	if err != nil {
		return err
	}
	if err := c.CopyIn(ctx, src, dst); err != nil {
		return fmt.Errorf("qemu: copy %s into %s: %w", dst, id, err)
	}
	return nil
}

// RemoveIn removes path in the guest, through its agent.
func (d *Driver) RemoveIn(ctx context.Context, id, path string) error {
	c, err := d.running(ctx, id, "remove")
	if err != nil {
		return err
	}
	if err := c.Remove(ctx, path); err != nil {
		return fmt.Errorf("qemu: remove %s in %s: %w", path, id, err)
	}
	return nil
}

// GuestFigures reads the guest's CPU, memory and disk figures through its
// agent; the CPU figure covers the time since the previous call.
func (d *Driver) GuestFigures(ctx context.Context, id string) (driver.GuestFigures, error) {
	c, err := d.running(ctx, id, "stats")
	if err != nil {
		return driver.GuestFigures{}, err
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return driver.GuestFigures{}, fmt.Errorf("qemu: stats of %s: %w", id, err)
	}
	f := driver.GuestFigures{
		CPUs: st.CPUs, Load1: st.Load[0], SampledAt: time.Now().UTC(),
		MemoryTotal: int64(st.MemTotal), MemoryUsed: int64(st.MemTotal - min(st.MemAvailable, st.MemTotal)),
		DiskTotal: int64(st.DiskTotal), DiskUsed: int64(st.DiskTotal - min(st.DiskFree, st.DiskTotal)),
	}
	if st.CPUTotal > 0 {
		f.CPUPercent = 100 * float64(st.CPUBusy) / float64(st.CPUTotal)
	}
	return f, nil
}

// ServeGuests makes h answer the requests guests make of the host (their
// metadata service's), for the connections made from now on: the agent
// calls it before it starts or recovers instances.
func (d *Driver) ServeGuests(h func(id string) http.Handler) {
	d.mu.Lock()
	d.guests = h
	d.mu.Unlock()
}

// Remove forgets a stopped instance: it stops watching it, closes its
// connections and deletes its overlay and socket directory.
func (d *Driver) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	in, ok := d.instances[id]
	delete(d.instances, id)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	in.stopWatching()
	in.closeAgent()
	var errs []error
	if in.st.Overlay != "" {
		if err := os.Remove(in.st.Overlay); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if in.st.SocketDir != in.dir {
		if err := os.RemoveAll(in.st.SocketDir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("qemu: remove %s: %w", id, err)
	}
	return nil
}

// agent returns the instance's guest agent connection, connecting (and
// waiting for the guest to be ready) when there is none or it broke.
func (d *Driver) agent(ctx context.Context, in *instance) (*guest.Client, error) {
	if !in.st.GuestAgent {
		return nil, errors.New("the image has no guest agent")
	}
	in.connMu.Lock()
	defer in.connMu.Unlock()
	in.mu.Lock()
	c := in.agent
	in.mu.Unlock()
	if c != nil {
		select {
		case <-c.Done():
			c.Close()
		default:
			return c, nil
		}
	}
	// Bounded whatever the caller's patience: the watcher waits for
	// connMu too, and a guest that never answers must not keep it from
	// giving the VM up.
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ReadyTimeout)
	defer cancel()
	c, err := guest.Dial(ctx, in.agentSocket())
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	guests := d.guests
	d.mu.Unlock()
	if guests != nil {
		c.ServeGuest(guests(in.id))
	}
	if _, err := c.Ready(ctx); err != nil {
		c.Close()
		return nil, err
	}
	in.mu.Lock()
	in.agent = c
	in.mu.Unlock()
	return c, nil
}

// connected returns the guest agent connection if there is a live one.
func (in *instance) connected() *guest.Client {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.agent == nil {
		return nil
	}
	select {
	case <-in.agent.Done():
		return nil
	default:
		return in.agent
	}
}

func (in *instance) closeAgent() {
	in.mu.Lock()
	c := in.agent
	in.agent = nil
	in.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// qmp runs f on a fresh QMP connection. QEMU serves one QMP client at a
// time, so the driver holds none between operations: a recovering agent
// (or a person with socat) can always get in.
func (d *Driver) qmp(ctx context.Context, in *instance, f func(*qmp.Client) error) error {
	c, err := dialQMP(ctx, in.qmpSocket())
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

// dialQMP connects to QEMU's monitor, retrying while QEMU is still
// creating it, for up to 10 s or until ctx ends.
func dialQMP(ctx context.Context, path string) (*qmp.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		c, err := qmp.Dial(ctx, path)
		if err == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// logLines returns the non-blank lines of the last 64 KiB of the log.
func logLines(dir string) []string {
	rc, err := shim.Logs(context.Background(), dir, 64<<10, false)
	if err != nil {
		return nil
	}
	defer rc.Close()
	data, _ := io.ReadAll(rc)
	return splitNonEmpty(string(data))
}

// splitNonEmpty returns the lines of s that are not blank, trimmed.
func splitNonEmpty(s string) []string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
