// Package agent is the node agent: it registers its node with the
// controller, heartbeats the status of every instance it runs, watches the
// set of instances the controller assigns to it, runs them through the
// runtime drivers, probes their health and restarts them in place with
// back-off. Instances outlive the agent: a restarted agent adopts them.
package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/buildinfo"
	"github.com/weftcloud/weft/internal/driveproc"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/imagecache"
	"github.com/weftcloud/weft/internal/untar"
)

// Controller is the controller as the agent sees it; *client.Client
// implements it over HTTP.
type Controller interface {
	RegisterNode(ctx context.Context, reg api.NodeRegistration) (api.Node, error)
	Heartbeat(ctx context.Context, node string, hb api.Heartbeat) (api.HeartbeatReply, error)
	Assignments(ctx context.Context, node string, index uint64, wait time.Duration) (api.Assignments, error)
	// Peers returns the peers of one of the node's instances
	// (api.Assignment.PeersVersion).
	Peers(ctx context.Context, node, instance string) ([]api.Peer, error)
	Package(ctx context.Context, digest string) (io.ReadCloser, error)
	// ScheduledEventAction forwards an instance's answer to its scheduled event.
	ScheduledEventAction(ctx context.Context, node string, act api.ScheduledEventAction) (api.ScheduledEvent, error)
	imagecache.Source
}

// DefaultHeartbeatInterval is how often an agent reports until the
// controller tells it otherwise (weft agent --heartbeat-interval).
const DefaultHeartbeatInterval = 500 * time.Millisecond

// Config configures an agent; zero values take defaults.
type Config struct {
	Name        string
	DataDir     string
	FaultDomain string // default: Name
	Listen      string // the agent's API; default 127.0.0.1:0
	// TLS, when set, serves the agent's API over mutual TLS; it must admit
	// the servers' certificate only. With or without it, every call must
	// also carry the token the agent registered with, which only the
	// servers know.
	TLS  *tls.Config
	Host string // where instances' ports are reachable; default 127.0.0.1
	// MetadataListen is the instance metadata service's address; default
	// Host with a free port. Instances find it in WEFT_METADATA.
	MetadataListen    string
	CPU               float64       // default: the machine's cores
	Memory            int64         // default: the machine's memory
	HeartbeatInterval time.Duration // until the controller tells another; default DefaultHeartbeatInterval
	StopGrace         time.Duration // SIGTERM to SIGKILL; default 10s
	// MaxUnpackBytes bounds what one image or package may unpack to;
	// default untar.DefaultMaxBytes.
	MaxUnpackBytes int64
	// MaxUnpackedBytes bounds all the images and packages unpacked on the
	// node at once (the image cache and every instance's copy of its
	// package); default untar.DefaultBudget.
	MaxUnpackedBytes int64
	Drivers          []driver.Driver
	// DriveServeCommand starts the server of a process's or container's
	// drive (internal/driveproc); default: this executable with
	// "drive-serve".
	DriveServeCommand []string
	Logger            *slog.Logger
	// Metrics is the registry the agent's metrics go in, served at GET
	// /metrics on its API; nil makes one of its own.
	Metrics *prometheus.Registry
}

// Agent is a running node agent.
type Agent struct {
	cfg     Config
	ctl     Controller
	log     *slog.Logger
	drivers map[string]driver.Driver
	ln      net.Listener
	mdln    net.Listener // the instance metadata service
	// apiToken is what the agent's API takes from its callers: made at
	// start, told to the servers when the node registers.
	apiToken string

	mu        sync.Mutex
	instances map[string]*instance
	stopped   map[string]bool // assigned with desired stopped, and not running here
	// fencedAt is when each persistent instance was fenced (selfFence): an
	// answer to a request sent before then does not start it again.
	fencedAt map[string]time.Time
	rewatch  chan struct{} // asks watchLoop for a fresh query
	events   []api.Event
	closing  bool          // StopAll ran: start nothing new
	assigned chan struct{} // closed once the first assignments are reconciled
	kick     chan struct{} // asks for a heartbeat now
	pkgMu    sync.Mutex    // one package download at a time
	images   *imagecache.Cache
	unpacked *untar.Budget // images and instances' packages on disk
	// rootsMu guards roots: how much of unpacked each instance's copy of
	// its package holds, by the copy's folder.
	rootsMu sync.Mutex
	roots   map[string]int64

	figures *figures
	metrics *prometheus.Registry
	// net is the node's share of the virtual networks (network.go).
	net *netPlane
	vpn *vpnPlane
	// routing is what routeVMs knows of the VMs' VPN routes (vmroutes.go).
	routing vmRouting
}

// New checks the configuration and opens the agent's API listener.
func New(cfg Config, ctl Controller) (*Agent, error) {
	if cfg.Name == "" || cfg.DataDir == "" {
		return nil, errors.New("agent: a name and a data directory are required")
	}
	// Instance directories are handed to shims that run elsewhere: make them absolute.
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	cfg.DataDir = dataDir
	if cfg.FaultDomain == "" {
		cfg.FaultDomain = cfg.Name
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.CPU <= 0 {
		cfg.CPU = float64(runtime.NumCPU())
	}
	if cfg.Memory <= 0 {
		cfg.Memory = machineMemory()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxUnpackBytes <= 0 {
		cfg.MaxUnpackBytes = untar.DefaultMaxBytes
	}
	if cfg.MaxUnpackedBytes <= 0 {
		cfg.MaxUnpackedBytes = untar.DefaultBudget
	}
	if len(cfg.Drivers) == 0 {
		return nil, errors.New("agent: no runtime driver")
	}
	if cfg.DriveServeCommand, err = driveproc.Command(cfg.DriveServeCommand); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, d := range []string{"instances", "packages"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	if cfg.MetadataListen == "" {
		cfg.MetadataListen = net.JoinHostPort(cfg.Host, "0")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", cfg.Listen, err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	mdln, err := net.Listen("tcp", cfg.MetadataListen)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("agent: metadata service: listen on %s: %w", cfg.MetadataListen, err)
	}
	unpacked := untar.NewBudget(cfg.MaxUnpackedBytes)
	a := &Agent{
		cfg: cfg, ctl: ctl, log: cfg.Logger, drivers: map[string]driver.Driver{}, ln: ln, mdln: mdln, apiToken: rand.Text(),
		images:   imagecache.New(filepath.Join(cfg.DataDir, "images"), ctl, cfg.MaxUnpackBytes, unpacked),
		unpacked: unpacked, roots: map[string]int64{},
		instances: map[string]*instance{}, stopped: map[string]bool{}, fencedAt: map[string]time.Time{}, rewatch: make(chan struct{}, 1), kick: make(chan struct{}, 1), assigned: make(chan struct{}),
	}
	for _, d := range cfg.Drivers {
		a.drivers[d.Name()] = d
		if gs, ok := d.(driver.GuestServer); ok {
			gs.ServeGuests(a.guestMetadataHandler)
		}
	}
	a.net = newNetPlane(cfg.Logger, cfg.Name, cfg.Host, cfg.DataDir)
	a.vpn = newVPNPlane(cfg.Logger, cfg.Name, a.net)
	a.figures = newFigures()
	if a.metrics, err = a.registerMetrics(); err != nil {
		ln.Close()
		mdln.Close()
		return nil, err
	}
	a.holdRoots()
	return a, nil
}

// Addr is the agent API's address, http(s)://host:port.
func (a *Agent) Addr() string {
	if a.cfg.TLS != nil {
		return "https://" + a.ln.Addr().String()
	}
	return "http://" + a.ln.Addr().String()
}

// Run registers the node and serves until ctx ends. Instances keep running
// after it returns.
func (a *Agent) Run(ctx context.Context) error {
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(a.ln)
	defer srv.Close()
	md := &http.Server{Handler: a.metadataHandler(), ReadHeaderTimeout: 10 * time.Second}
	go md.Serve(a.mdln)
	defer md.Close()

	a.recover(ctx)
	if err := a.register(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.heartbeatLoop(ctx) }()
	go func() { defer wg.Done(); a.watchLoop(ctx) }()
	wg.Wait()
	a.vpn.close()
	a.mu.Lock()
	insts := make([]*instance, 0, len(a.instances))
	for _, in := range a.instances {
		insts = append(insts, in)
	}
	a.mu.Unlock()
	for _, in := range insts {
		<-in.done // supervisors return on ctx; the processes keep running
	}
	return ctx.Err()
}

// Instances returns the IDs of the instances this agent runs, sorted.
func (a *Agent) Instances() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Sorted(maps.Keys(a.instances))
}

// StopAll stops every instance this agent runs (used when `weft dev` ends).
func (a *Agent) StopAll(ctx context.Context) error {
	a.mu.Lock()
	a.closing = true
	var insts []*instance
	for _, in := range a.instances {
		in.requestStop(true)
		insts = append(insts, in)
	}
	a.mu.Unlock()
	for _, in := range insts {
		select {
		case <-in.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (a *Agent) register(ctx context.Context) error {
	runtimes := make([]string, 0, len(a.drivers))
	attrs := map[string]string{}
	for name, d := range a.drivers {
		runtimes = append(runtimes, name)
		if desc, ok := d.(driver.Describer); ok {
			maps.Copy(attrs, desc.Attributes())
		}
	}
	slices.Sort(runtimes)
	reg := api.NodeRegistration{
		Name: a.cfg.Name, Address: a.Addr(), Host: a.cfg.Host, FaultDomain: a.cfg.FaultDomain,
		Capacity: api.Resources{CPU: a.cfg.CPU, Memory: api.Bytes(a.cfg.Memory)},
		Runtimes: runtimes, Attributes: attrs, Version: buildinfo.Version, APIToken: a.apiToken,
	}
	backoff := 250 * time.Millisecond
	for {
		_, err := a.ctl.RegisterNode(ctx, reg)
		if err == nil {
			a.log.Info("node registered", "fault_domain", a.cfg.FaultDomain, "cpu", a.cfg.CPU, "memory", api.Bytes(a.cfg.Memory), "api", a.Addr())
			return nil
		}
		if errors.Is(err, api.ErrInvalid) {
			return fmt.Errorf("agent: register: %w", err)
		}
		a.log.Warn("cannot register; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// heartbeatLoop reports every interval, and at once when something
// changed. The interval is the one the controller last told
// (HeartbeatReply.Interval), Config.HeartbeatInterval until it does.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	interval := a.cfg.HeartbeatInterval
	tick := time.NewTicker(interval)
	defer tick.Stop()
	fence := time.AfterFunc(time.Hour, a.selfFence)
	fence.Stop() // armed by the first heartbeat the controller answers
	defer fence.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.kick:
		}
		hb, events := a.snapshot()
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sent := time.Now()
		reply, err := a.ctl.Heartbeat(hctx, a.cfg.Name, hb)
		cancel()
		if err != nil {
			a.requeue(events)
			if ctx.Err() == nil {
				a.log.Warn("heartbeat failed", "err", err)
			}
			continue
		}
		if after := time.Duration(reply.Fence); after > 0 {
			// From when the heartbeat was sent, which is before the
			// controller heard it and started its own clock (the
			// fabric's persistent grace): armed from the reply, a reply held up
			// for longer than the margin between the two (half a TTL)
			// left the instances running after the controller may have
			// started them elsewhere. A reply later than the fence time
			// fences at once.
			fence.Reset(after - time.Since(sent))
		}
		if told := time.Duration(reply.Interval); told > 0 && told != interval {
			a.log.Info("heartbeat interval set by the controller", "interval", told)
			interval = told
			tick.Reset(interval)
		}
		if a.hasFenced() {
			select {
			case a.rewatch <- struct{}{}:
			default:
			}
		}
		if !reply.Known {
			a.requeue(events)
			a.log.Warn("the controller does not know this node; registering again")
			if err := a.register(ctx); err != nil {
				return
			}
		}
	}
}

func (a *Agent) hasFenced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.fencedAt) > 0
}

// selfFence stops this node's persistent instances once the controller has
// answered no heartbeat sent in the last fence time it announced
// (HeartbeatReply.Fence):
// soon after, the controller starts them on other nodes from the same
// disks, and a persistent instance must never run twice. The
// disks' leases already keep a superseded copy from writing once the new
// one holds them; this ends the copy itself, with what it could still do
// through its memory and network. It is killed, not shut down: its disks
// may belong to another node now. Ephemeral instances keep running until
// the controller, reached again, says what to stop; a persistent instance
// the controller still assigns here when it is back is started again.
func (a *Agent) selfFence() {
	a.mu.Lock()
	var fenced []*instance
	now := time.Now()
	for _, in := range a.instances {
		if in.fence() {
			fenced = append(fenced, in)
			a.fencedAt[in.id] = now
		}
	}
	a.mu.Unlock()
	for _, in := range fenced {
		a.log.Warn("no contact with the controller for its fence time: stopping a persistent instance", "instance", in.id)
		a.event(in, "instance.fenced", "warn", fmt.Sprintf("instance %s stopped: this node lost contact with the controller, which runs it elsewhere", in.id))
	}
}

// snapshot is the heartbeat to send: every instance's status and the events
// since the last one.
func (a *Agent) snapshot() (api.Heartbeat, []api.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	hb := api.Heartbeat{Instances: []api.InstanceStatus{}}
	for _, in := range a.instances {
		hb.Instances = append(hb.Instances, in.status())
	}
	for id := range a.stopped {
		hb.Instances = append(hb.Instances, api.InstanceStatus{ID: id, State: api.StateStopped, Health: api.HealthUnknown})
	}
	hb.Events, a.events = a.events, nil
	return hb, hb.Events
}

func (a *Agent) requeue(events []api.Event) {
	a.mu.Lock()
	a.events = append(events, a.events...)
	a.mu.Unlock()
}

// changed asks for a heartbeat soon; bursts coalesce.
func (a *Agent) changed() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Agent) event(in *instance, typ, level, msg string) {
	in.mu.Lock()
	service, role := in.asg.Instance.Service, in.asg.Instance.Role
	in.mu.Unlock()
	a.mu.Lock()
	a.events = append(a.events, api.Event{
		Time: time.Now().UTC(), Type: typ, Level: level, Node: a.cfg.Name,
		Service: service, Role: role, Instance: in.id, Message: msg,
	})
	a.mu.Unlock()
	a.changed()
}

// watchLoop follows the node's assignments with blocking queries. A query
// in flight when an instance was fenced is dropped for a fresh one once a
// heartbeat gets through again (rewatch), since its answer may not start
// that instance.
func (a *Agent) watchLoop(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		sent := time.Now()
		qctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-a.rewatch:
				cancel()
			case <-qctx.Done():
			}
		}()
		as, err := a.ctl.Assignments(qctx, a.cfg.Name, index, 30*time.Second)
		rewatched := qctx.Err() != nil && ctx.Err() == nil
		cancel()
		if rewatched {
			index = 0
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, api.ErrNotFound) {
				a.register(ctx) // the controller forgot us
			} else {
				a.log.Warn("watch assignments failed", "err", err)
			}
			index = 0
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		index = as.Index
		// The networks first: instances that start in reconcile attach
		// to them.
		a.net.apply(ctx, as.Networks)
		a.vpn.apply(ctx, as.VPNs)
		a.reconcile(ctx, as.Instances, sent)
		a.routeVMs(ctx)
		onNets := onNetworks(as.Instances)
		a.vpn.keep(onNets)
		a.net.sweep(ctx, onNets)
	}
}

// reconcile makes the node run exactly what is assigned, as of an answer
// to a request sent at sent. A persistent instance fenced after that is
// not started again: the answer may have been held up by the partition
// that caused the fence, and the controller may run it elsewhere by now.
func (a *Agent) reconcile(ctx context.Context, assigned []api.Assignment, sent time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return
	}
	seen := map[string]bool{}
	for _, asg := range assigned {
		id := asg.Instance.ID
		seen[id] = true
		stale := sent.Before(a.fencedAt[id])
		if !stale {
			delete(a.fencedAt, id)
		}
		in, ok := a.instances[id]
		switch {
		case ok:
			in.update(asg)
			if asg.Instance.Desired == api.DesiredStopped {
				in.requestStop(false)
			}
		case asg.Instance.Desired == api.DesiredRunning && stale:
			continue
		case asg.Instance.Desired == api.DesiredRunning:
			delete(a.stopped, id)
			d, ok := a.drivers[asg.Role.Runtime]
			if !ok {
				a.stopped[id] = true // cannot run it; the controller placed it by mistake
				a.log.Error("no driver for the runtime", "instance", id, "runtime", asg.Role.Runtime)
				continue
			}
			in = newInstance(a, asg, d)
			a.instances[id] = in
			go in.supervise(ctx)
		default:
			a.stopped[id] = true
		}
	}
	for id, in := range a.instances {
		if !seen[id] {
			in.requestStop(true)
		}
	}
	for id := range a.stopped {
		if !seen[id] {
			delete(a.stopped, id)
		}
	}
	for id, at := range a.fencedAt {
		if !seen[id] && at.Before(sent) {
			delete(a.fencedAt, id) // assigned elsewhere now
		}
	}
	select {
	case <-a.assigned:
	default:
		close(a.assigned) // after the stop requests above: see instance.confirmAdopted
	}
}

// onNetworks maps each assigned instance that should run on a virtual
// network to the network's VNI.
func onNetworks(assigned []api.Assignment) map[string]int {
	out := map[string]int{}
	for _, asg := range assigned {
		if asg.Network != nil && asg.Instance.Desired == api.DesiredRunning {
			out[asg.Instance.ID] = asg.Network.VNI
		}
	}
	return out
}

// forget drops a removed instance.
func (a *Agent) forget(id string) {
	a.mu.Lock()
	delete(a.instances, id)
	a.mu.Unlock()
	a.changed()
}

// recover adopts the instances an earlier agent left running.
func (a *Agent) recover(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(a.cfg.DataDir, "instances", "*", assignmentFile))
	for _, f := range dirs {
		dir := filepath.Dir(f)
		var saved savedAssignment
		if err := atomicfile.ReadJSON(f, &saved); err != nil {
			a.removeInstanceDir(dir)
			continue
		}
		d, ok := a.drivers[saved.Assignment.Role.Runtime]
		if !ok {
			continue
		}
		id := saved.Assignment.Instance.ID
		st, err := d.Recover(ctx, id, dir)
		if err != nil {
			// Nothing runs: start afresh if the controller still wants it.
			a.log.Info("an instance an earlier agent started is not running", "instance", id, "err", err)
			d.Remove(ctx, id)
			a.removeInstanceDir(dir)
			continue
		}
		in := newInstance(a, saved.Assignment, d)
		if saved.Token != "" {
			in.token = saved.Token // the one in its environment
		}
		in.ports = saved.Ports
		in.adopted = &st
		in.restarts = saved.Restarts
		if role := saved.Assignment.Role; len(role.Drives) > 0 && role.Runtime != api.RuntimeVM {
			var all bool
			in.drives, all = a.adoptDrives(id, role, saved.Assignment.Drives)
			in.drivesLost = !all
		}
		a.mu.Lock()
		a.instances[id] = in
		a.mu.Unlock()
		a.log.Info("adopted a running instance", "instance", id, "pid", st.PID)
		go in.supervise(ctx)
	}
	a.stopStrayDrives(ctx)
}

// machineMemory is MemTotal from /proc/meminfo, or 1 GiB when unreadable.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1 << 30
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10
		}
	}
	return 1 << 30
}
