// Package fleet is the fleet harness behind cmd/weft-fleet: it starts real
// servers (one, or a Raft cluster of three) and N simulated nodes, each a
// real node agent (internal/agent) over the real client and HTTP API with a
// fake runtime (internal/driver/fake), deploys M instances and measures
// what issue 19 asks of a controller at the scale of a hoster's region:
// time to all running, reconcile pass latency, API latency under that
// load, time to heal a 10% node loss, the controller's memory and the CPU
// its heartbeats take.
package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/agent"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/fake"
	"github.com/weftcloud/weft/internal/pkgarchive"
)

// Config says what fleet to run; zero values take the defaults.
type Config struct {
	Nodes     int // default 50
	Instances int // default 1000
	Servers   int // 1 or 3; default 1
	// PerService is how many instances each deployed service has; the
	// harness deploys Instances/PerService services. Default 100.
	PerService int
	// HeartbeatInterval, HeartbeatRate and HeartbeatTTL are the
	// controller's (daemon.ServerConfig), which tells the agents how
	// often to report; zero: the daemon's defaults.
	HeartbeatInterval time.Duration
	HeartbeatRate     float64
	HeartbeatTTL      time.Duration
	// DownWaveFraction is the servers' --down-wave-fraction (1 turns the
	// node-down wave guard off); zero: the daemon's default.
	DownWaveFraction float64
	// Cut cuts CutNodes of the nodes off the servers for this long once
	// every instance runs, before the node kill: their heartbeats are
	// lost, as when the controller's network is cut or it is too starved
	// to take them. Zero: no cut. CutNodes defaults to every node.
	Cut      time.Duration
	CutNodes int
	// KillLeader kills the leading server (SIGKILL) when half the
	// services are deployed; only with several servers.
	KillLeader bool
	// Dir is the work folder; default a new one in /dev/shm (or the
	// temporary folder), removed at the end unless Keep.
	Dir  string
	Keep bool
	// Pprof serves the first server's net/http/pprof on this address.
	Pprof string
	// CPUWindow is how long the heartbeats' CPU is measured; default 5s.
	CPUWindow time.Duration
	// Timeout bounds each wait (nodes ready, all running, healed);
	// default 5 minutes.
	Timeout time.Duration
	// Progress hears what the harness is doing; nil: nothing.
	Progress func(format string, args ...any)
}

// Result is what one run measured. JSON keys are the ones issue 19 names.
type Result struct {
	Nodes     int `json:"nodes"`
	Instances int `json:"instances"`
	Servers   int `json:"servers"`
	// RegisterSeconds: from the agents' start to every node ready.
	RegisterSeconds float64 `json:"registerSeconds"`
	// AllRunningSeconds: from the first deploy call to every instance
	// reported running and healthy.
	AllRunningSeconds float64 `json:"allRunningSeconds"`
	// Reconcile passes from the first deploy to the end of the heal, from
	// the controller's histogram (estimated within its buckets, as
	// Prometheus's histogram_quantile does).
	ReconcileP50Ms  float64 `json:"reconcileP50Ms"`
	ReconcileP99Ms  float64 `json:"reconcileP99Ms"`
	ReconcilePasses int     `json:"reconcilePasses"`
	// APIP99Ms: deploys, lists of services and lists of one service's
	// instances while the fleet deploys and heals. APICallsP99Ms has each
	// kind apart, and the list of every instance (what the harness polls
	// with), which is not in APIP99Ms.
	APIP99Ms      float64            `json:"apiP99Ms"`
	APICallsP99Ms map[string]float64 `json:"apiCallsP99Ms"`
	APIErrors     map[string]int     `json:"apiErrors,omitempty"`
	// HealSeconds: from killing 10% of the nodes to their instances
	// running and healthy elsewhere (the heartbeat TTL included).
	HealSeconds float64 `json:"healSeconds"`
	NodesKilled int     `json:"nodesKilled"`
	// ControllerRSSBytes is the peak resident memory (VmHWM) of the
	// largest server process.
	ControllerRSSBytes int64 `json:"controllerRSSBytes"`
	// HeartbeatCPUPercent is the servers' CPU (of one core, all servers
	// summed) while every instance runs and only heartbeats arrive.
	HeartbeatCPUPercent float64 `json:"heartbeatCPUPercent"`
	HeartbeatsPerSecond float64 `json:"heartbeatsPerSecond"`
	LeaderKilled        bool    `json:"leaderKilled,omitempty"`
	// With Config.Cut: the nodes declared down and the instances placed
	// from the cut until every node was ready and every instance running
	// and healthy again (none of either when no node was lost), and how
	// long that took from the cut's end.
	CutNodesDown      int     `json:"cutNodesDown,omitempty"`
	CutPlacements     int     `json:"cutPlacements,omitempty"`
	CutSettledSeconds float64 `json:"cutSettledSeconds,omitempty"`
}

func (c *Config) setDefaults() {
	if c.Nodes <= 0 {
		c.Nodes = 50
	}
	if c.Instances <= 0 {
		c.Instances = 1000
	}
	if c.Servers <= 0 {
		c.Servers = 1
	}
	if c.PerService <= 0 {
		c.PerService = 100
	}
	if c.CPUWindow <= 0 {
		c.CPUWindow = 5 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.CutNodes <= 0 || c.CutNodes > c.Nodes {
		c.CutNodes = c.Nodes
	}
	if c.Progress == nil {
		c.Progress = func(string, ...any) {}
	}
}

// node is one simulated node: a real agent whose runtime is fake.
type node struct {
	name   string
	link   *link
	stop   context.CancelFunc
	exited chan struct{}
}

// Run runs the fleet once and returns what it measured.
func Run(ctx context.Context, cfg Config) (_ Result, err error) {
	cfg.setDefaults()
	if cfg.Servers != 1 && cfg.Servers != 3 {
		return Result{}, fmt.Errorf("fleet: -servers %d: 1 or 3", cfg.Servers)
	}
	if cfg.KillLeader && cfg.Servers == 1 {
		return Result{}, errors.New("fleet: a leader kill needs -servers 3")
	}
	res := Result{Nodes: cfg.Nodes, Instances: cfg.Instances, Servers: cfg.Servers}
	dir := cfg.Dir
	if dir == "" {
		parent := ""
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			parent = "/dev/shm" // the agents' instance folders, without a disk's fsyncs
		}
		if dir, err = os.MkdirTemp(parent, "weft-fleet-"); err != nil {
			return Result{}, fmt.Errorf("fleet: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	cfg.Progress("starting %d server(s) in %s", cfg.Servers, dir)
	cl, err := startServers(ctx, cfg, dir)
	if err != nil {
		return Result{}, err
	}
	defer cl.close()
	pkg, err := uploadPackage(ctx, cl.client, dir)
	if err != nil {
		return Result{}, err
	}

	cfg.Progress("starting %d nodes", cfg.Nodes)
	began := time.Now()
	nodes, err := startNodes(cfg, cl, dir)
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
		for _, n := range nodes {
			<-n.exited
		}
	}()
	if err != nil {
		return Result{}, err
	}
	if err := waitFor(ctx, cfg.Timeout, func() bool { return readyNodes(ctx, cl.client) == cfg.Nodes }); err != nil {
		return Result{}, fmt.Errorf("fleet: %d of %d nodes ready: %w", readyNodes(ctx, cl.client), cfg.Nodes, err)
	}
	res.RegisterSeconds = time.Since(began).Seconds()
	cfg.Progress("%d nodes ready in %.1fs", cfg.Nodes, res.RegisterSeconds)

	before := scrapeReconcile(ctx, cl)
	lat := newLatencies()
	probeCtx, stopProbing := context.WithCancel(ctx)
	probing := make(chan struct{})
	go func() { defer close(probing); probeAPI(probeCtx, cl.client, lat) }()
	defer func() { stopProbing(); <-probing }()

	cfg.Progress("deploying %d instances", cfg.Instances)
	began = time.Now()
	killed, err := deploy(ctx, cfg, cl, pkg, lat)
	if err != nil {
		return Result{}, err
	}
	res.LeaderKilled = killed
	if err := waitFor(ctx, cfg.Timeout, func() bool {
		n, err := healthyInRoles(ctx, cl.client, lat, nil)
		if err == nil {
			cfg.Progress("%d of %d instances running and healthy", n, cfg.Instances)
		}
		return n == cfg.Instances
	}); err != nil {
		return Result{}, fmt.Errorf("fleet: not every instance running: %w", err)
	}
	res.AllRunningSeconds = time.Since(began).Seconds()
	cfg.Progress("all running in %.1fs", res.AllRunningSeconds)

	if res.HeartbeatCPUPercent, res.HeartbeatsPerSecond, err = heartbeatCPU(ctx, cl, cfg.CPUWindow); err != nil {
		return Result{}, err
	}
	cfg.Progress("heartbeats (%.0f a second) take %.1f%% of a core", res.HeartbeatsPerSecond, res.HeartbeatCPUPercent)

	if cfg.Cut > 0 {
		if err := cutNodes(ctx, cfg, cl, nodes, lat, &res); err != nil {
			return Result{}, err
		}
	}

	res.NodesKilled = max(1, cfg.Nodes/10)
	lost := map[string]bool{}
	for _, n := range nodes[:res.NodesKilled] {
		lost[n.name] = true
		n.stop()
	}
	cfg.Progress("killed %d nodes", res.NodesKilled)
	began = time.Now()
	if err := waitFor(ctx, cfg.Timeout, func() bool {
		n, err := healthyInRoles(ctx, cl.client, lat, lost)
		return err == nil && n == cfg.Instances
	}); err != nil {
		return Result{}, fmt.Errorf("fleet: not healed: %w", err)
	}
	res.HealSeconds = time.Since(began).Seconds()
	cfg.Progress("healed in %.1fs", res.HealSeconds)
	// The roles' counts checked against the instances themselves. The
	// list comes in pages, and the controller may still be moving
	// instances (nodes its agents starved of CPU, declared down, back): a
	// replacement whose ID sorts before a page already read is not in
	// that list. So the list is read again until it agrees; a count that
	// never does is a fault.
	listed, lerr := 0, error(nil)
	if err := waitFor(ctx, listAgreeTimeout, func() bool {
		listed, lerr = healthy(ctx, cl.client, lat, lost)
		return lerr == nil && listed == cfg.Instances
	}); err != nil {
		return Result{}, fmt.Errorf("fleet: the roles count every instance healthy, the list of instances %d of %d after %s (%v)", listed, cfg.Instances, listAgreeTimeout, lerr)
	}

	passes := passesSince(scrapeReconcile(ctx, cl), before)
	res.ReconcilePasses = int(passes.total())
	res.ReconcileP50Ms = ms(passes.quantile(0.5))
	res.ReconcileP99Ms = ms(passes.quantile(0.99))
	stopProbing()
	<-probing
	res.APICallsP99Ms = map[string]float64{}
	lat.mu.Lock()
	ops := make([]string, 0, len(lat.byOp))
	for op := range lat.byOp {
		ops = append(ops, op)
	}
	res.APIErrors = lat.errs
	lat.mu.Unlock()
	for _, op := range ops {
		res.APICallsP99Ms[op] = seconds(lat.p99(op))
	}
	res.APIP99Ms = seconds(max(lat.p99(opDeploy), lat.p99(opListServices), lat.p99(opListInstances)))
	for _, s := range cl.servers {
		select {
		case <-s.done:
			continue
		default:
		}
		if _, peak, err := procStatus(s.cmd.Process.Pid); err == nil {
			res.ControllerRSSBytes = max(res.ControllerRSSBytes, peak)
		}
	}
	return res, nil
}

// cutNodes loses the heartbeats of cfg.CutNodes nodes for cfg.Cut, then
// waits until every node is ready and every instance running and healthy
// again. It notes in res the nodes declared down and the instances placed
// from the cut to then.
func cutNodes(ctx context.Context, cfg Config, cl *cluster, nodes []*node, lat *latencies, res *Result) error {
	counts := func() (down, placed float64) {
		for _, s := range cl.servers {
			c := cl.newClient(s.api)
			n, _ := scrapeCounter(ctx, c, nodesDownMetric)
			p, _ := scrapeCounter(ctx, c, placementsMetric)
			down, placed = down+n, placed+p
		}
		return down, placed
	}
	down, placed := counts()
	cfg.Progress("cutting %d nodes off for %s", cfg.CutNodes, cfg.Cut)
	for _, n := range nodes[:cfg.CutNodes] {
		n.link.cut(true)
	}
	time.Sleep(cfg.Cut)
	for _, n := range nodes[:cfg.CutNodes] {
		n.link.cut(false)
	}
	healed := time.Now()
	// A wave, if there is one, came in the passes during the cut; the
	// nodes declared down are ready again at their next heartbeat.
	if err := waitFor(ctx, cfg.Timeout, func() bool {
		if readyNodes(ctx, cl.client) != cfg.Nodes {
			return false
		}
		n, err := healthyInRoles(ctx, cl.client, lat, nil)
		return err == nil && n == cfg.Instances
	}); err != nil {
		return fmt.Errorf("fleet: not settled after the cut: %w", err)
	}
	res.CutSettledSeconds = time.Since(healed).Seconds()
	downAfter, placedAfter := counts()
	res.CutNodesDown, res.CutPlacements = int(downAfter-down), int(placedAfter-placed)
	cfg.Progress("after the cut: %d nodes declared down, %d instances placed, settled in %.1fs", res.CutNodesDown, res.CutPlacements, res.CutSettledSeconds)
	return nil
}

// link is a node's way to the servers, which cutNodes can cut: a heartbeat
// sent while it is cut is lost (it fails once the cut ends, or its context
// does).
type link struct {
	agent.Controller
	mu     sync.Mutex
	healed chan struct{} // nil: not cut
}

func (l *link) cut(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case on && l.healed == nil:
		l.healed = make(chan struct{})
	case !on && l.healed != nil:
		close(l.healed)
		l.healed = nil
	}
}

func (l *link) Heartbeat(ctx context.Context, node string, hb api.Heartbeat) (api.HeartbeatReply, error) {
	l.mu.Lock()
	healed := l.healed
	l.mu.Unlock()
	if healed != nil {
		select {
		case <-healed:
		case <-ctx.Done():
		}
		return api.HeartbeatReply{}, errors.New("fleet: heartbeat lost: the node was cut off")
	}
	return l.Controller.Heartbeat(ctx, node, hb)
}

// ms rounds seconds to milliseconds with a tenth.
func ms(s float64) float64 {
	if math.IsNaN(s) {
		return 0
	}
	return math.Round(s*10000) / 10
}

func seconds(d time.Duration) float64 { return ms(d.Seconds()) }

// listAgreeTimeout bounds the end check's wait for the list of instances
// to agree with the roles' counts (a list of 20,000 took up to 36 s on a
// loaded machine).
const listAgreeTimeout = 2 * time.Minute

// API calls the harness times.
const (
	opDeploy        = "deploy"
	opListServices  = "list-services"
	opListInstances = "list-service-instances"
	opListAll       = "list-all-instances"
)

// uploadPackage uploads the one package every instance runs: the fake
// runtime runs nothing, but each node still fetches and unpacks it.
func uploadPackage(ctx context.Context, c *client.Client, dir string) (string, error) {
	src := filepath.Join(dir, "package")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, "run"), []byte("#!/bin/sh\nexec sleep infinity\n"), 0o755); err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	var buf bytes.Buffer
	if err := pkgarchive.Pack(src, &buf); err != nil {
		return "", fmt.Errorf("fleet: %w", err)
	}
	p, err := c.UploadPackage(ctx, &buf)
	if err != nil {
		return "", fmt.Errorf("fleet: upload the package: %w", err)
	}
	return p.Digest, nil
}

// startNodes starts cfg.Nodes agents in ten fault domains, each with a
// client of its own (its own connections, as a remote node has).
func startNodes(cfg Config, cl *cluster, dir string) ([]*node, error) {
	quiet := slog.New(slog.DiscardHandler)
	var nodes []*node
	for i := range cfg.Nodes {
		name := fmt.Sprintf("node-%04d", i+1)
		l := &link{Controller: cl.newNodeClient(cl.addrs())}
		a, err := agent.New(agent.Config{
			Name: name, DataDir: filepath.Join(dir, "nodes", name), FaultDomain: fmt.Sprintf("fd%d", i%10),
			CPU: 64, Memory: 256 << 30, // the heartbeat interval is the controller's to tell
			Drivers: []driver.Driver{fake.New(api.RuntimeProcess)}, Logger: quiet,
		}, l)
		if err != nil {
			return nodes, fmt.Errorf("fleet: %w", err)
		}
		ctx, stop := context.WithCancel(context.Background())
		n := &node{name: name, link: l, stop: stop, exited: make(chan struct{})}
		go func() { defer close(n.exited); a.Run(ctx) }()
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func readyNodes(ctx context.Context, c *client.Client) int {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for _, nd := range nodes {
		if nd.State == api.NodeReady {
			n++
		}
	}
	return n
}

// deploy deploys the services (4 at a time), each call timed; with
// cfg.KillLeader it kills the leader when half are deployed, and says so.
// A deploy that fails is tried again (a client's retry) for up to a minute.
func deploy(ctx context.Context, cfg Config, cl *cluster, pkg string, lat *latencies) (bool, error) {
	count := (cfg.Instances + cfg.PerService - 1) / cfg.PerService
	next := make(chan int)
	var deployed atomic.Int64
	var killOnce sync.Once
	killed := false
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				n := min(cfg.PerService, cfg.Instances-i*cfg.PerService)
				spec := api.ServiceSpec{Name: fmt.Sprintf("svc-%04d", i), Roles: []api.RoleSpec{{
					Name: "work", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: pkg,
					Command: []string{"./run"}, Instances: n, Size: api.Size{CPU: 0.1, Memory: 64 << 20},
				}}}
				var err error
				for try := 0; try < 60; try++ {
					if err = lat.time(opDeploy, func() error { _, err := cl.client.Deploy(ctx, spec); return err }); err == nil {
						break
					}
					time.Sleep(time.Second)
				}
				if err != nil {
					errs <- fmt.Errorf("fleet: deploy %s: %w", spec.Name, err)
					continue
				}
				if cfg.KillLeader && deployed.Add(1) == int64(count/2) {
					killOnce.Do(func() {
						if l := cl.leader(ctx); l != nil {
							cfg.Progress("killing the leader, %s", l.name)
							l.kill()
							killed = true
						}
					})
				}
			}
		}()
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return killed, <-errs
}

// probeAPI lists services and one service's instances, timed, until ctx ends.
func probeAPI(ctx context.Context, c *client.Client, lat *latencies) {
	for ctx.Err() == nil {
		lat.time(opListServices, func() error { _, err := c.Services(ctx); return err })
		lat.time(opListInstances, func() error { _, err := c.Instances(ctx, "svc-0000"); return err })
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// healthyInRoles counts the instances running and healthy as the
// services' roles count them, once every node in lost is down (a down
// node's instances are dropped, so none of theirs is counted then); 0
// while one is not. It reads the lists of services and nodes, not every
// instance: that list took up to 36 s at 20,000 instances on a loaded
// machine, and the waits measured it rather than the controller.
func healthyInRoles(ctx context.Context, c *client.Client, lat *latencies, lost map[string]bool) (int, error) {
	if len(lost) > 0 {
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return 0, err
		}
		for _, n := range nodes {
			if lost[n.Name] && n.State != api.NodeDown {
				return 0, nil
			}
		}
	}
	var svcs []api.Service
	if err := lat.time(opListServices, func() error {
		var err error
		svcs, err = c.Services(ctx)
		return err
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range svcs {
		for _, r := range s.Roles {
			n += r.Healthy
		}
	}
	return n, nil
}

// healthy counts the instances running and healthy on nodes not in lost.
func healthy(ctx context.Context, c *client.Client, lat *latencies, lost map[string]bool) (int, error) {
	var insts []api.Instance
	err := lat.time(opListAll, func() error {
		var err error
		insts, err = c.Instances(ctx, "")
		return err
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range insts {
		if in.Desired == api.DesiredRunning && in.State == api.StateRunning && in.Health == api.HealthHealthy && !lost[in.Node] {
			n++
		}
	}
	return n, nil
}

// scrapeReconcile reads the reconcile histogram of each server that answers.
func scrapeReconcile(ctx context.Context, cl *cluster) map[string]histogram {
	out := map[string]histogram{}
	for _, s := range cl.servers {
		if h, err := scrapeHistogram(ctx, cl.newClient(s.api), reconcileMetric); err == nil {
			out[s.name] = h
		}
	}
	return out
}

// passesSince sums what each server observed since before; a server
// killed meanwhile takes its observations with it.
func passesSince(now, before map[string]histogram) histogram {
	var sum histogram
	for name, h := range now {
		sum = sum.plus(h.since(before[name]))
	}
	return sum
}

// heartbeatCPU measures the running servers' CPU over window, in percent
// of one core, and the heartbeats a second they took meanwhile.
func heartbeatCPU(ctx context.Context, cl *cluster, window time.Duration) (cpu, rate float64, err error) {
	var live []*server
	for _, s := range cl.servers {
		select {
		case <-s.done:
		default:
			live = append(live, s)
		}
	}
	used := func() (time.Duration, error) {
		var sum time.Duration
		for _, s := range live {
			d, err := procCPU(s.cmd.Process.Pid)
			if err != nil {
				return 0, err
			}
			sum += d
		}
		return sum, nil
	}
	beats := func() float64 {
		var sum float64
		for _, s := range live {
			n, err := scrapeCounter(ctx, cl.newClient(s.api), heartbeatsMetric)
			if err == nil {
				sum += n
			}
		}
		return sum
	}
	beatsBefore := beats()
	start := time.Now()
	before, err := used()
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(window)
	after, err := used()
	if err != nil {
		return 0, 0, err
	}
	took := time.Since(start)
	rate = math.Round((beats()-beatsBefore)/took.Seconds()*10) / 10
	return math.Round(float64(after-before)/float64(took)*1000) / 10, rate, nil
}

// Summary is a result for people, with the goals of issue 19 beside the
// figures (they are set for 1,000 nodes and 20,000 instances).
func Summary(r Result) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d nodes, %d instances, %d server(s)%s\n", r.Nodes, r.Instances, r.Servers,
		map[bool]string{true: ", leader killed mid-deploy"}[r.LeaderKilled])
	fmt.Fprintf(&b, "  nodes ready            %8.1f s\n", r.RegisterSeconds)
	fmt.Fprintf(&b, "  all running            %8.1f s    goal < 60 s\n", r.AllRunningSeconds)
	fmt.Fprintf(&b, "  reconcile pass p50     %8.1f ms   (%d passes)\n", r.ReconcileP50Ms, r.ReconcilePasses)
	fmt.Fprintf(&b, "  reconcile pass p99     %8.1f ms   goal < 100 ms\n", r.ReconcileP99Ms)
	fmt.Fprintf(&b, "  API p99                %8.1f ms   goal < 200 ms\n", r.APIP99Ms)
	for op, v := range r.APICallsP99Ms {
		fmt.Fprintf(&b, "    %-22s %6.1f ms   (%d failed)\n", op, v, r.APIErrors[op])
	}
	fmt.Fprintf(&b, "  heal %3d nodes lost     %8.1f s    goal < 10 s\n", r.NodesKilled, r.HealSeconds)
	fmt.Fprintf(&b, "  controller peak RSS    %8.0f MiB  goal < 1024 MiB\n", float64(r.ControllerRSSBytes)/(1<<20))
	fmt.Fprintf(&b, "  heartbeat CPU          %8.1f %%    of one core, %.0f heartbeats/s\n", r.HeartbeatCPUPercent, r.HeartbeatsPerSecond)
	return b.String()
}
