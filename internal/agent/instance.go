package agent

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/driver"
)

const assignmentFile = "assignment.json"

// Restart back-off: doubles from backoffMin to backoffMax, and starts over
// once an instance ran healthy for backoffReset.
const (
	backoffMin   = 250 * time.Millisecond
	backoffMax   = 30 * time.Second
	backoffReset = 30 * time.Second
)

// savedAssignment is what a restarted agent needs to adopt an instance.
type savedAssignment struct {
	Assignment api.Assignment `json:"assignment"`
	Ports      map[string]int `json:"ports"`
	Restarts   int            `json:"restarts"`
	// Token is the instance's metadata token (api.EnvMetadataToken); the
	// file is the agent's user's alone, as is its folder.
	Token string `json:"token,omitempty"`
}

// instance is one instance on this node and the goroutine supervising it.
type instance struct {
	a   *Agent
	id  string
	dir string
	drv driver.Driver

	// token is the instance's key to the metadata service: it is in the
	// instance's environment only, and the file it is kept in.
	token string

	mu  sync.Mutex
	asg api.Assignment
	// peers are the instance's peers as read from the controller at
	// peersVersion (Agent.peers).
	peers        []api.Peer
	peersVersion string
	// settingsEvent tells the instance its live settings changed.
	settingsEvent *api.ScheduledEvent
	ports         map[string]int
	state         string
	health        string
	message       string
	restarts      int
	startedAt     time.Time
	// lastError is why the last run failed (api.Instance.LastError);
	// failedStarts counts the runs in a row that failed to start or ended
	// within api.FailFastWindow; ran is whether any run started.
	lastError    string
	failedStarts int
	ran          bool
	adopted      *driver.Status // running when the agent started: watch it, do not start it
	disks        *diskSet       // a persistent instance's disks, served while it lives on this node
	drives       *driveSet      // the drives of its slot, mounted while it lives on this node
	drivesLost   bool           // adopted with a drive whose server had died: restart it
	stopping     bool
	remove       bool // forget the instance once stopped
	fenced       bool // stopped by selfFence: kill it, no grace
	stopCh       chan struct{}
	reimageCh    chan struct{} // the controller asked for a fresh start
	done         chan struct{}

	// Live migration: where this node's incoming copy listens, the source's
	// outcome, and the attempt last handed to migrateCh.
	incoming    string
	migrationID string
	migrated    *api.MigrationResult
	migrateCh   chan struct{}
	migrateSeen string

	// Extensions (extensions.go): the runner's kick, whether its next
	// pass follows a fresh start, each extension's status, and extMu
	// held while the runner or a reimage changes the extensions' folder.
	extCh      chan struct{}
	extStarted bool
	extStatus  map[string]api.ExtensionStatus
	// inGuest names the version of each packaged extension whose folder
	// the driver has copied into the instance (driver.Copier), so that
	// a version's folder is copied once rather than before each handler.
	// Guarded by extMu; forgotten when the instance starts afresh.
	inGuest map[string]string
	extMu   sync.Mutex
	// monitorStop stops the monitor extension's sampling (monitor.go).
	monitorStop context.CancelFunc
}

func newInstance(a *Agent, asg api.Assignment, d driver.Driver) *instance {
	return &instance{
		a: a, id: asg.Instance.ID, dir: filepath.Join(a.cfg.DataDir, "instances", asg.Instance.ID), drv: d,
		asg: asg, state: api.StateStarting, health: api.HealthUnknown, token: rand.Text(),
		stopCh: make(chan struct{}), reimageCh: make(chan struct{}, 1), migrateCh: make(chan struct{}, 1), done: make(chan struct{}),
		extCh: make(chan struct{}, 1),
	}
}

func (in *instance) update(asg api.Assignment) {
	in.mu.Lock()
	reimage := asg.Instance.Incarnation > in.asg.Instance.Incarnation
	migrate := false
	if m := asg.Instance.Migration; m != nil && m.URI != "" && !asg.Incoming && m.ID != in.migrateSeen {
		in.migrateSeen, migrate = m.ID, true
	}
	in.settingsChanged(in.asg, asg)
	extChanged := extensionsDiffer(in.asg.Role.Extensions, asg.Role.Extensions)
	in.asg = asg
	in.mu.Unlock()
	if extChanged {
		in.kickExtensions(extensionsChanged)
	}
	if reimage {
		select {
		case in.reimageCh <- struct{}{}:
		default: // one is pending already
		}
	}
	if migrate {
		select {
		case in.migrateCh <- struct{}{}:
		default:
		}
	}
}

// requestStop asks the supervisor to stop the instance; with remove it is
// also deleted from the node afterwards.
func (in *instance) requestStop(remove bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if remove {
		in.remove = true
	}
	if !in.stopping {
		in.stopping = true
		close(in.stopCh)
	}
}

// fence stops and removes a persistent instance, or one with drives, at
// once (see Agent.selfFence) and reports whether it was one.
func (in *instance) fence() bool {
	in.mu.Lock()
	persistent := in.asg.Role.RunsOnce()
	in.fenced = in.fenced || persistent
	in.mu.Unlock()
	if persistent {
		in.requestStop(true)
	}
	return persistent
}

func (in *instance) status() api.InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	ports := make(map[string]int, len(in.ports))
	for k, v := range in.ports {
		ports[k] = v
	}
	return api.InstanceStatus{
		ID: in.id, State: in.state, Health: in.health, Ports: ports,
		Restarts: in.restarts, Message: in.message, StartedAt: in.startedAt,
		LastError: in.lastError, FailedStarts: in.failedStarts,
		Incoming: in.incoming, MigrationID: in.migrationID, Migrated: in.migrated,
		Extensions: in.extensionStatuses(),
	}
}

// set changes the reported state and asks for a heartbeat when it moved.
func (in *instance) set(state, health, message string) {
	in.mu.Lock()
	changed := in.state != state || in.health != health || in.message != message
	in.state, in.health, in.message = state, health, message
	in.mu.Unlock()
	if changed {
		in.a.changed()
	}
}

// supervise runs the instance until it is asked to stop, restarting it in
// place when it exits or fails its probe. It returns when the agent stops
// (leaving the instance running) or after the instance was stopped.
func (in *instance) supervise(ctx context.Context) {
	defer close(in.done)
	if !in.confirmAdopted(ctx) {
		return
	}
	go in.runExtensions(ctx)
	backoff := backoffMin
	for {
		st, err := in.start(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			in.failed("failed to start: "+err.Error(), 0)
			in.addRestart() // the start is tried again after the back-off
			in.set(api.StateFailed, api.HealthUnknown, err.Error())
			in.a.event(in, "instance.failed", "error", fmt.Sprintf("instance %s failed to start: %v", in.id, err))
		} else {
			in.mu.Lock()
			in.startedAt = st.StartedAt
			in.ran = true
			in.mu.Unlock()
			reason, healthyFor := in.watch(ctx)
			switch reason {
			case "":
				return // the agent is stopping; the instance keeps running
			case stopRequested:
				in.stop(ctx)
				return
			case migratedAway:
				// It runs on the destination now; the controller drops it
				// from this node's assignments once it has heard so.
				in.set(api.StateStopped, api.HealthUnknown, "migrated to another node")
				select {
				case <-ctx.Done():
				case <-in.stopCh:
					in.stop(ctx)
				}
				return
			case reimageRequested:
				// Start again at once, from the package or image: the
				// driver throws away what the instance wrote.
				in.addRestart()
				in.a.event(in, "instance.reimaged", "info", fmt.Sprintf("instance %s stopped for a reimage; starting it afresh", in.id))
				in.resetExtensions()
				continue
			}
			if healthyFor >= backoffReset {
				backoff = backoffMin
			}
			in.failed(reason, healthyFor)
			n := in.addRestart()
			in.set(api.StateStarting, api.HealthUnhealthy, fmt.Sprintf("restarting in %s: %s", backoff, reason))
			in.a.event(in, "instance.restarted", "warn",
				fmt.Sprintf("instance %s %s; restarting in place in %s (restart %d)", in.id, reason, backoff, n))
		}
		select {
		case <-ctx.Done():
			return
		case <-in.stopCh:
			in.stop(ctx)
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// failed records why a run ended, and counts it as a failed start when it
// did not run healthy for api.FailFastWindow (healthyFor: how long it
// did; 0 when it never started).
func (in *instance) failed(why string, healthyFor time.Duration) {
	in.mu.Lock()
	in.lastError = why
	if healthyFor < api.FailFastWindow {
		in.failedStarts++
	} else {
		in.failedStarts = 0
	}
	in.mu.Unlock()
}

// settled forgets the failed starts of an instance that has now run
// healthy for api.FailFastWindow.
func (in *instance) settled() {
	in.mu.Lock()
	changed := in.failedStarts != 0
	in.failedStarts = 0
	in.mu.Unlock()
	if changed {
		in.a.changed()
	}
}

// startError is why the instance never started, or "" once a run started.
func (in *instance) startError() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ran {
		return ""
	}
	return in.lastError
}

const (
	stopRequested    = "stop requested"
	reimageRequested = "reimage requested"
)

// start starts the instance, or takes over the one a previous agent left.
func (in *instance) start(ctx context.Context) (driver.Status, error) {
	in.mu.Lock()
	adopted := in.adopted
	in.adopted = nil
	// A VM's drives are disks served like its own (serveDisks), which
	// QEMU reconnects to; other runtimes' are mounted on the node.
	hasDrives := len(in.asg.Role.Drives) > 0 && in.asg.Role.Runtime != api.RuntimeVM
	in.mu.Unlock()
	if err := in.serveDisks(ctx); err != nil {
		return driver.Status{}, err
	}
	if adopted != nil && hasDrives && in.drivesLost {
		// A server of its drives died (recover adopted the others): the
		// drive is gone from under it. Started again, on drives mounted
		// anew, once what is left of them is stopped.
		in.a.log.Warn("restarting an adopted instance: a server of its drives is gone", "instance", in.id)
		if err := in.drv.Stop(ctx, in.id, 0); err != nil {
			return driver.Status{}, err
		}
		in.mu.Lock()
		drives := in.drives
		in.drives, in.drivesLost = nil, false
		in.mu.Unlock()
		drives.detach(in.a)
		adopted = nil
	}
	if err := in.mountDrives(ctx); err != nil {
		return driver.Status{}, err
	}
	if adopted != nil {
		in.set(api.StateRunning, api.HealthUnknown, "")
		in.kickExtensions(extensionsChanged) // what changed while no agent ran
		return *adopted, nil
	}
	in.set(api.StateStarting, api.HealthUnknown, "")
	spec, err := in.prepare(ctx)
	if err != nil {
		return driver.Status{}, err
	}
	in.mu.Lock()
	asg := in.asg
	in.mu.Unlock()
	if asg.Incoming && asg.Instance.Migration != nil {
		st, err := in.startIncoming(ctx, spec, asg.Instance.Migration.ID)
		if err != nil {
			return st, fmt.Errorf("receive the migrating VM: %w", err)
		}
		in.set(api.StateRunning, api.HealthUnknown, "")
		return st, nil
	}
	began := time.Now()
	st, err := in.drv.Start(ctx, spec)
	in.a.figures.observeStart(in.drv.Name(), began, err)
	if err != nil {
		return st, err
	}
	in.set(api.StateRunning, api.HealthUnknown, "")
	in.kickExtensions(extensionsStarted)
	return st, nil
}

// watch waits for the instance to exit, fail its probe, or be stopped, and
// says why ("" when the agent itself is stopping), and how long it had been
// healthy.
func (in *instance) watch(ctx context.Context) (reason string, healthyFor time.Duration) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited := make(chan driver.Status, 1)
	go func() {
		st, err := in.drv.Wait(wctx, in.id)
		if err == nil {
			exited <- st
		}
	}()
	in.mu.Lock()
	asg := in.asg
	ports := in.ports
	in.mu.Unlock()
	p := newProber(asg.Role, in.a.cfg.Host, ports, filepath.Join(in.dir, "root"))
	// Once healthy for api.FailFastWindow, the run is not a failed start.
	settle := time.NewTimer(api.FailFastWindow)
	settle.Stop()
	defer settle.Stop()
	if p == nil {
		in.set(api.StateRunning, api.HealthHealthy, "")
		settle.Reset(api.FailFastWindow)
	}
	var firstHealthy time.Time
	started := time.Now()
	failures := 0
	next := time.NewTimer(100 * time.Millisecond)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", 0
		case <-in.stopCh:
			return stopRequested, 0
		case <-in.migrateCh:
			if in.migrateOut(ctx) {
				return migratedAway, 0
			}
			continue
		case <-in.reimageCh:
			in.set(api.StateStopping, api.HealthUnknown, "reimaging")
			if err := in.drv.Stop(ctx, in.id, in.grace()); err != nil {
				in.a.log.Error("stop instance for a reimage", "instance", in.id, "err", err)
			}
			return reimageRequested, 0
		case st := <-exited:
			if st.Reason == driver.ReasonMigrated {
				return migratedAway, 0
			}
			if !firstHealthy.IsZero() {
				healthyFor = time.Since(firstHealthy)
			}
			if p == nil {
				healthyFor = time.Since(started)
			}
			return st.Reason, healthyFor
		case <-settle.C:
			in.settled()
			continue
		case <-next.C:
		}
		if p == nil {
			continue
		}
		began := time.Now()
		err := p.probe(ctx)
		in.a.figures.observeProbe(began, err)
		interval := p.interval
		switch {
		case err == nil:
			failures = 0
			if firstHealthy.IsZero() {
				firstHealthy = time.Now()
				settle.Reset(api.FailFastWindow)
			}
			in.set(api.StateRunning, api.HealthHealthy, "")
		default:
			failures++
			in.set(api.StateRunning, api.HealthUnhealthy, "health probe: "+err.Error())
			// Until the first success the instance may still be starting:
			// probe often, and only count failures after a grace period.
			inGrace := firstHealthy.IsZero() && time.Since(started) < p.grace()
			if failures >= p.failures && !inGrace {
				in.drv.Stop(ctx, in.id, in.grace())
				if !firstHealthy.IsZero() {
					healthyFor = time.Since(firstHealthy)
				}
				return fmt.Sprintf("failed its health probe %d times (%v)", failures, err), healthyFor
			}
		}
		if firstHealthy.IsZero() {
			interval = min(interval, 200*time.Millisecond)
		}
		next.Reset(interval)
	}
}

// stop stops the instance; a removed instance is also deleted from disk.
func (in *instance) stop(ctx context.Context) {
	in.set(api.StateStopping, api.HealthUnknown, "")
	grace := in.grace()
	in.mu.Lock()
	fenced, onStop := in.fenced, in.asg.Role.OnStop
	in.mu.Unlock()
	if fenced {
		grace = 0
	} else if len(onStop) > 0 {
		in.onStop(ctx, onStop, grace)
	}
	if err := in.drv.Stop(ctx, in.id, grace); err != nil {
		in.a.log.Error("stop instance", "instance", in.id, "err", err)
	} else {
		in.a.log.Info("instance stopped", "instance", in.id)
	}
	in.set(api.StateStopped, api.HealthUnknown, "")
	in.mu.Lock()
	remove, disks, drives, att := in.remove, in.disks, in.drives, in.asg.Network
	in.disks, in.drives = nil, nil
	in.mu.Unlock()
	disks.close()
	drives.detach(in.a)
	if att != nil {
		in.a.net.detach(ctx, att.VNI, in.id)
	}
	if remove {
		in.drv.Remove(ctx, in.id)
		in.a.removeInstanceDir(in.dir)
		in.a.forget(in.id)
		return
	}
	// Still assigned (desired stopped): keep reporting it stopped until the
	// controller drops it; the next reconcile removes it.
	in.a.mu.Lock()
	in.a.stopped[in.id] = true
	delete(in.a.instances, in.id)
	in.a.mu.Unlock()
	in.drv.Remove(ctx, in.id)
	in.a.removeInstanceDir(in.dir)
	in.a.changed()
}

// grace is how long the instance has from SIGTERM to SIGKILL: its role's
// stopGrace, or the node's.
func (in *instance) grace() time.Duration {
	in.mu.Lock()
	defer in.mu.Unlock()
	if g := time.Duration(in.asg.Role.StopGrace); g > 0 {
		return g
	}
	return in.a.cfg.StopGrace
}

// confirmAdopted holds an adopted persistent instance until the controller's
// first assignments say whether it is still this node's: while no agent ran
// here, the controller may have declared the node down and started it
// elsewhere, and serving its disks would break their leases, taken by the
// new copy, and fence that one instead. An instance no longer assigned is
// killed, its disks untouched, and confirmAdopted returns false.
func (in *instance) confirmAdopted(ctx context.Context) bool {
	in.mu.Lock()
	wait := in.adopted != nil && (len(in.asg.Role.Disks) > 0 || len(in.asg.Role.Drives) > 0)
	in.mu.Unlock()
	if !wait {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case <-in.a.assigned:
	case <-in.stopCh:
	}
	in.mu.Lock()
	gone := in.remove
	in.fenced = in.fenced || gone
	in.mu.Unlock()
	if gone {
		in.stop(ctx)
		return false
	}
	return true
}

// serveDisks starts serving a persistent VM's disks and a VM's drives, once.
func (in *instance) serveDisks(ctx context.Context) error {
	in.mu.Lock()
	asg, have := in.asg, in.disks != nil
	in.mu.Unlock()
	role := asg.Role
	var driveRole []api.RoleDrive
	if role.Runtime == api.RuntimeVM {
		driveRole = role.Drives
	}
	if have || len(role.Disks) == 0 && len(driveRole) == 0 {
		return nil
	}
	if len(asg.Disks) != len(role.Disks) {
		return fmt.Errorf("the controller gave no access to the instance's disks (does it run the storage service?)")
	}
	var drives []api.DiskAccess
	if len(driveRole) > 0 {
		if len(asg.Drives) != len(driveRole) {
			return errNoDriveAccess
		}
		drives = asg.Drives
	}
	if err := in.makeDir(); err != nil {
		return err
	}
	set, err := in.a.attachDisks(ctx, in.id, in.dir, asg.Disks, driveRole, drives)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.disks = set
	in.mu.Unlock()
	return nil
}

// mountDrives mounts the drives of the instance's slot, once.
func (in *instance) mountDrives(ctx context.Context) error {
	in.mu.Lock()
	role, access, have := in.asg.Role, in.asg.Drives, in.drives != nil
	in.mu.Unlock()
	if have || len(role.Drives) == 0 || role.Runtime == api.RuntimeVM {
		return nil
	}
	set, err := in.a.attachDrives(ctx, in.id, role, access)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.drives = set
	in.mu.Unlock()
	return nil
}

// prepare lays out the instance's directory: its package, its ports, its
// environment, and the record a restarted agent adopts it from.
func (in *instance) prepare(ctx context.Context) (driver.Spec, error) {
	in.mu.Lock()
	asg := in.asg
	in.mu.Unlock()
	role := asg.Role
	root := filepath.Join(in.dir, "root")
	in.a.removeRoot(root) // a restart starts from a clean copy of the package
	if err := in.makeDir(); err != nil {
		return driver.Spec{}, fmt.Errorf("instance dir: %w", err)
	}
	if role.Package != "" {
		if err := in.a.unpack(ctx, role.Package, root); err != nil {
			return driver.Spec{}, err
		}
	}
	imageDir := ""
	if role.Image != "" {
		var err error
		if imageDir, err = in.a.images.Ensure(ctx, role.Image, role.ImageDigest); err != nil {
			return driver.Spec{}, err
		}
	}
	in.mu.Lock()
	if in.ports == nil {
		in.ports = map[string]int{}
	}
	for _, ep := range role.Endpoints {
		// A restart keeps its ports unless another process took one meanwhile:
		// then the instance would fail to listen on every restart.
		if port, ok := in.ports[ep.Name]; ok && portFree(in.a.cfg.Host, port) {
			continue
		}
		port, err := freePort(in.a.cfg.Host)
		if err != nil {
			in.mu.Unlock()
			return driver.Spec{}, fmt.Errorf("allocate a port for %s: %w", ep.Name, err)
		}
		in.ports[ep.Name] = port
	}
	ports := in.ports
	restarts := in.restarts
	var disks, vmDrives []driver.Disk
	if in.disks != nil {
		disks, vmDrives = in.disks.disks, in.disks.drives
	}
	drives := in.drives
	in.mu.Unlock()
	var guestPorts map[string]int
	for _, ep := range role.Endpoints {
		if ep.GuestPort != 0 {
			if guestPorts == nil {
				guestPorts = map[string]int{}
			}
			guestPorts[ep.Name] = ep.GuestPort
		}
	}
	env := map[string]string{
		"WEFT_SERVICE": asg.Instance.Service, "WEFT_ROLE": asg.Instance.Role,
		"WEFT_INSTANCE": in.id, "WEFT_NODE": in.a.cfg.Name,
		api.EnvMetadata: in.a.metadataURL(), api.EnvMetadataToken: in.token,
	}
	for name, port := range ports {
		env["WEFT_PORT_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = fmt.Sprint(port)
	}
	for k, v := range role.Settings {
		env[k] = v
	}
	var mounts []driver.Mount
	if drives != nil {
		maps.Copy(env, drives.env)
		mounts = slices.Clone(drives.mounts)
	}
	for _, d := range vmDrives {
		env[api.DriveEnv(d.Name)] = d.Mount
	}
	if role.Runtime == api.RuntimeContainer {
		// Always, so that extensions added while it runs are seen too.
		if err := os.MkdirAll(in.extDir(), 0o700); err != nil {
			return driver.Spec{}, fmt.Errorf("extensions folder: %w", err)
		}
		mounts = append(mounts, driver.Mount{Source: in.extDir(), Target: guestExtensionsDir, ReadOnly: true})
	}
	var join func(context.Context, string) error
	var resolv string
	var nic *driver.NIC
	if att := asg.Network; att != nil {
		// Never started without the network its address is on.
		dns, err := in.a.net.ready(att)
		if err != nil {
			return driver.Spec{}, err
		}
		env[envNetworkDNS], env[envPrivateAddress] = dns.String(), att.Address
		conf, err := resolvConf(in.dir, asg.Instance.Service, att, dns)
		if err != nil {
			return driver.Spec{}, err
		}
		if role.Runtime == api.RuntimeContainer {
			mounts = append(mounts, driver.Mount{Source: conf, Target: "/etc/resolv.conf", ReadOnly: true})
		} else if role.Runtime == api.RuntimeProcess {
			resolv = conf // a process shares the host's files but this one
		}
		if role.Runtime == api.RuntimeVM {
			if nic, err = in.a.net.attachVM(ctx, in.id, asg.Instance.Service, att, dns); err != nil {
				return driver.Spec{}, err
			}
		} else {
			join = func(ctx context.Context, netns string) error { return in.a.net.attach(ctx, in.id, att, netns) }
		}
	}
	if err := atomicfile.WriteJSON(filepath.Join(in.dir, assignmentFile), savedAssignment{Assignment: asg, Ports: ports, Restarts: restarts, Token: in.token}); err != nil {
		return driver.Spec{}, err
	}
	return driver.Spec{
		ID: in.id, Dir: in.dir, Package: root, Image: role.Image, ImageDir: imageDir, Command: role.Command, Env: env,
		CPU: role.Size.CPU, Memory: int64(role.Size.Memory), Ports: ports, GuestPorts: guestPorts, Disks: disks, Drives: vmDrives, Mounts: mounts,
		JoinNetwork: join, ResolvConf: resolv, NIC: nic,
	}, nil
}

// makeDir makes the instance's directory, private to the agent's user:
// it holds the instance's output log, its settings and its disks.
func (in *instance) makeDir() error {
	if err := os.MkdirAll(in.dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(in.dir, 0o700) // made by an agent from before it was private
}

// portFree reports whether port can be listened on at host.
func portFree(host string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// freePort asks the kernel for a free port on host.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
