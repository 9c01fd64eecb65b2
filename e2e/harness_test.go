// Package e2e holds tests that start real weft processes (server, agents,
// the CLI) on loopback and drive them as a user would.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driver/container"
	"github.com/weftcloud/weft/internal/instancenet"
	"github.com/weftcloud/weft/internal/pki"
	"github.com/weftcloud/weft/internal/procstat"
)

// Built once in TestMain.
var (
	weftBin  string // the weft binary
	helloBin string // examples/hello, the package of the test services
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The slots above limit the tests; -parallel N limits them further.
	parallelGiven := false
	flag.Visit(func(f *flag.Flag) { parallelGiven = parallelGiven || f.Name == "test.parallel" })
	if !parallelGiven {
		flag.Set("test.parallel", "100")
	}
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	weftBin = filepath.Join(dir, "weft")
	helloBin = filepath.Join(dir, "hello")
	// Built as make build builds bin/weft (CGO_ENABLED=0, -trimpath), so
	// that make test, which runs make build first, finds every package
	// compiled: without -trimpath this build compiled them all again
	// (36 CPU-s, against 3.5 for the link alone).
	for _, b := range []struct{ out, pkg string }{{weftBin, "../cmd/weft"}, {helloBin, "../examples/hello"}} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b.pkg, err, out)
			os.Exit(1)
		}
	}
	// Servers without TLS keep their admin token for the user who started
	// them, where the CLI and the client find it: here, the test run's.
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Every test runs beside the others (go test starts parallel tests only
// once every other test has ended), each holding a slot of one kind while
// it runs, so that the CPU-bound VM boots and the multi-host tests overlap
// the tests that mostly wait (heartbeat TTLs, elections, certificate
// expiry) instead of running before them:
//   - parallel: uses only ports from freePort (weft dev's test also its
//     storage's fixed ports, which no other test's server takes), its own
//     folder and the processes it started; e2eParallel of them at a time.
//   - vmTest: boots VMs, CPU-bound without KVM, but each test also waits
//     (heartbeat TTLs, fencing, relocation): two at a time (vmSlots). One
//     at a time the ten of them made a chain of 10-15 minutes on a loaded
//     machine, the suite's longest path; two at a time they took 6. On a
//     machine with two busy loops beside make test, the other kinds ended
//     after four minutes and the VM tests ran seven more. Three at once
//     once the other kinds had ended was tried and given up: the other
//     packages' VM, drive and namespace tests still run then, and two full
//     runs on a quiet machine failed in them (guest boots of 28 s).
//   - netnsTest: hosts in network namespaces, partitioned on purpose (links
//     cut), whose timings a second such test's load would blur: one at a
//     time. Tests on namespaced hosts that cut no link take a slot of the
//     other kinds: ten tests in one chain were the suite's longest path,
//     and a VM test waiting for the namespaces' slot held a VM slot idle.
//
// A VM test that cuts links takes a VM slot, then the namespaces'.
var (
	e2eSlots  = make(chan struct{}, e2eParallel)
	vmSlots   = newVMSlots()
	netnsSlot = make(chan struct{}, 1)
)

// e2eParallel is how many tests that mostly wait run at once.
const e2eParallel = 4

func parallel(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	hold(t, e2eSlots)
}

func vmTest(t *testing.T) {
	requireQEMU(t)
	vmSlots.pend(t)
	t.Parallel()
	vmSlots.take(t)
}

func netnsTest(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	hold(t, netnsSlot)
}

// vmSlotsT is how many VM tests run at once, and which first: two; a
// free slot goes to the waiting test that comes first in vmOrder. The VM
// tests are counted before t.Parallel, while go test runs the tests one by
// one, so every one of them is known before any asks for a slot.
type vmSlotsT struct {
	mu      sync.Mutex
	changed sync.Cond
	running int                // VM tests holding a slot
	pending map[*testing.T]int // VM tests without a slot yet: their rank
}

// vmOrder is the VM tests, longest first: what each ran (its slot's wait
// left out) in a make test beside two busy loops, load ~21 (BENCHMARKS.md,
// "The test run"). In no set order, the one that ran longest had started
// last and ran alone at the end. Tests not named come after these.
var vmOrder = []string{
	"TestPersistentVMAfterLeaderChange",   // 264 s
	"TestVMRole",                          // 210 s
	"TestVPNReachesATenantVM",             // 205 s
	"TestVMOnVirtualNetwork",              // 125 s
	"TestPortalTenantsInABrowser",         // its VM part, ~100 s
	"TestVMGuest",                         // 96 s
	"TestPersistentVMSurvivesHostLoss",    // 74 s
	"TestPartitionedPersistentVMIsFenced", // 62 s
	"TestBootloaderImage",                 // 5 s
}

func newVMSlots() *vmSlotsT {
	s := &vmSlotsT{pending: map[*testing.T]int{}}
	s.changed.L = &s.mu
	return s
}

// pend counts t among the VM tests waiting for a slot until it has one
// (or ends without).
func (s *vmSlotsT) pend(t *testing.T) {
	rank := slices.Index(vmOrder, t.Name())
	if rank < 0 {
		rank = len(vmOrder)
	}
	s.mu.Lock()
	s.pending[t] = rank
	s.mu.Unlock()
	t.Cleanup(func() { s.forget(t) })
}

func (s *vmSlotsT) forget(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, t)
	s.changed.Broadcast()
}

// take holds a VM slot until t ends; the wait is logged as hold's.
func (s *vmSlotsT) take(t *testing.T) {
	s.mu.Lock()
	_, pending := s.pending[t]
	s.mu.Unlock()
	if !pending { // a test of another kind that boots a VM from here on
		s.pend(t)
	}
	began := time.Now()
	s.mu.Lock()
	for !s.free(t) {
		s.changed.Wait()
	}
	s.running++
	delete(s.pending, t)
	s.mu.Unlock()
	t.Logf("waited %s for a VM slot", time.Since(began).Round(100*time.Millisecond))
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.running--
		s.changed.Broadcast()
	})
}

// free reports whether t may take a slot now: one is free, and no VM test
// before it in vmOrder waits.
func (s *vmSlotsT) free(t *testing.T) bool {
	if s.running >= 2 {
		return false
	}
	for _, rank := range s.pending {
		if rank < s.pending[t] {
			return false
		}
	}
	return true
}

// hold takes a slot of sem until t ends. The wait is logged: a test's
// time in go test's output counts it, and what it ran is the rest.
func hold(t *testing.T, sem chan struct{}) {
	began := time.Now()
	sem <- struct{}{}
	t.Logf("waited %s for a slot", time.Since(began).Round(100*time.Millisecond))
	t.Cleanup(func() { <-sem })
}

func requireE2E(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
}

// proc is a weft process the test started.
type proc struct {
	name string
	addr string // a server's --listen
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// cluster is one controller and its agents, each a real process.
type cluster struct {
	t          testing.TB
	dir        string
	api        string // http://127.0.0.1:PORT
	apiArg     string // 127.0.0.1:PORT
	client     *client.Client
	server     *proc
	servers    map[string]*proc // a replicated controller (newServers)
	agents     map[string]*proc
	extra      []string // extra server flags
	agentFlags []string
	env        []string // extra environment for the CLI
	sec        *secure  // servers over TLS (several servers, or not on loopback)
}

// secure is what a test needs to reach servers that talk TLS: the
// credentials of weft tls init.
type secure struct {
	dir         string // the credentials' folder
	pool        *x509.CertPool
	token, join string // the API token and the join token
}

// tlsInit makes a cluster's credentials (weft tls init) for servers at
// hosts (loopback addresses are always in).
func tlsInit(t testing.TB, hosts ...string) *secure {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	args := []string{"tls", "init", "--dir", dir}
	for _, h := range hosts {
		args = append(args, "--host", h)
	}
	if out, err := exec.Command(weftBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("weft tls init: %v: %s", err, out)
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	pool, err := pki.LoadCA(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &secure{dir: dir, pool: pool, token: read("admin.token"), join: read("join.token")}
}

// serverFlags are what every server of the cluster is given.
func (s *secure) serverFlags() []string { return []string{"--tls-dir", s.dir} }

// agentFlags make an agent join with the join token.
func (s *secure) agentFlags() []string {
	return []string{"--join-token", s.join, "--ca-cert", filepath.Join(s.dir, "ca.pem")}
}

// env is the CLI's environment for the cluster.
func (s *secure) env() []string {
	return []string{"WEFT_TOKEN=" + s.token, "WEFT_CA_CERT=" + filepath.Join(s.dir, "ca.pem")}
}

// clientFor is a client of the servers at addrs (host:port or URLs, comma-
// separated), as the operator.
func (c *cluster) clientFor(addrs string) *client.Client {
	if c.sec == nil {
		return client.New(addrs)
	}
	var urls []string
	for _, a := range strings.Split(addrs, ",") {
		if !strings.Contains(a, "://") {
			a = "https://" + a
		}
		urls = append(urls, a)
	}
	return client.New(strings.Join(urls, ",")).WithTLS(&tls.Config{RootCAs: c.sec.pool}).WithToken(c.sec.token)
}

// httpGet GETs path from the server at addr (host:port) as the operator.
func (c *cluster) httpGet(ctx context.Context, addr, path string) (*http.Response, error) {
	scheme, hc := "http://", http.DefaultClient
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "", nil)
	if err != nil {
		return nil, err
	}
	if c.sec != nil {
		scheme = "https://"
		hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.sec.pool}}}
		req.Header.Set("Authorization", "Bearer "+c.sec.token)
	} else if tok := client.SavedToken(scheme + addr); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if req.URL, err = url.Parse(scheme + addr + path); err != nil {
		return nil, err
	}
	return hc.Do(req)
}

func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	// Below the kernel's ephemeral range (32768 and up), so that no
	// outgoing connection takes the port between this check and the
	// daemon's bind; and never the same port twice in one run.
	for tries := 0; tries < 1000; tries++ {
		port := 20000 + mrand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// fastServer tells agents to heartbeat often, and declares a node down
// soon after, so tests see changes sooner; fastAgent makes agents
// heartbeat often until the server tells them its interval.
var (
	fastServer = []string{"--heartbeat-interval", "250ms", "--heartbeat-ttl", "1500ms"}
	fastAgent  = []string{"--heartbeat-interval", "250ms"}
)

// agentRestartTTL, added to a server's flags after fastServer, is for
// tests that kill an agent, start it again and expect it to adopt what
// ran: on a loaded machine a restart outlasts fastServer's TTL, the node
// is declared down and its instances are replaced.
var agentRestartTTL = []string{"--heartbeat-ttl", "8s"}

// newCluster starts a controller and n agents (node-1..n in fd1..fdn), with
// a short heartbeat TTL for tests; serverFlags are added to the server's.
func newCluster(t testing.TB, n int, serverFlags ...string) *cluster {
	return newClusterWith(t, n, append(slices.Clone(fastServer), serverFlags...), fastAgent)
}

// newClusterWith starts a cluster with exactly the given extra flags (the
// benchmarks use the defaults).
func newClusterWith(t testing.TB, n int, serverFlags, agentFlags []string) *cluster {
	requireE2E(t)
	dir := t.TempDir()
	port := freePort(t)
	c := &cluster{
		t: t, dir: dir, apiArg: fmt.Sprintf("127.0.0.1:%d", port), agents: map[string]*proc{},
		extra: serverFlags, agentFlags: agentFlags,
	}
	c.api = "http://" + c.apiArg
	c.client = client.New(c.api)
	t.Cleanup(c.cleanup)
	c.startServer()
	for i := 1; i <= n; i++ {
		c.startAgent(fmt.Sprintf("node-%d", i))
	}
	c.waitFor("nodes ready", 20*time.Second, func() bool {
		nodes, err := c.client.Nodes(context.Background())
		if err != nil {
			return false
		}
		ready := 0
		for _, nd := range nodes {
			if nd.State == api.NodeReady {
				ready++
			}
		}
		return ready == n
	})
	return c
}

func (c *cluster) start(name string, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, cmd: exec.Command(weftBin, args...), log: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	p.cmd.Dir = c.dir
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p
}

func (c *cluster) startServer() {
	args := append([]string{"server", "--data", filepath.Join(c.dir, "server"), "--listen", c.apiArg,
		"--no-storage"}, c.extra...)
	c.server = c.start("server", args...)
	c.waitFor("API up", 20*time.Second, func() bool {
		_, err := c.client.Status(context.Background())
		return err == nil
	})
}

func (c *cluster) startAgent(name string) {
	i := strings.TrimPrefix(name, "node-")
	args := append([]string{"agent", "--server", c.api, "--name", name,
		"--data", filepath.Join(c.dir, name), "--fault-domain", "fd" + i, "--cpu", "4", "--memory", "4Gi"}, c.agentFlags...)
	c.agents[name] = c.start(name, args...)
}

// kill9 sends SIGKILL to a process the test started and waits for it.
func (c *cluster) kill9(p *proc) {
	c.t.Helper()
	_ = p.cmd.Process.Kill()
	c.waitExit(p)
}

// waitExit waits for a killed process to end, and fails the test rather
// than hang when it does not: a process with a thread stuck in the kernel
// (waiting on a FUSE server of its own, say) survives SIGKILL.
func (c *cluster) waitExit(p *proc) {
	c.t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s (pid %d) did not exit 30s after SIGKILL: a thread of it is stuck in the kernel", p.name, p.cmd.Process.Pid)
	}
}

// cleanup stops the processes this test started: server, agents, and every
// instance process (they run in the cluster's directory).
func (c *cluster) cleanup() {
	for _, p := range append(append([]*proc{c.server}, mapValues(c.servers)...), mapValues(c.agents)...) {
		if p != nil && p.cmd.Process != nil {
			_ = p.cmd.Process.Kill()
			c.waitExit(p)
		}
	}
	// Until a scan finds nothing: a shim forked by an agent just killed
	// may run its instance after the first scan (an instance of
	// TestDrainMovesInstances outlived its test under load, holding what
	// its parents held open).
	for round := 0; round < 20; round++ {
		pids := pidsUnder(c.dir)
		if len(pids) == 0 && round > 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	container.Sweep(context.Background(), c.dir)
	sweepDrives(c.t, c.dir)
	// An instance in a namespace of its own (a container, a process on a
	// virtual network) keeps it, and its address slot in the host-wide
	// IPAM folder (the drivers' default), when its agent is killed: a
	// day of test runs had left 177 of each on this machine.
	nets, _ := filepath.Glob(filepath.Join(c.dir, "*", "instances", "*", instancenet.File))
	for _, f := range nets {
		instancenet.Close("/run/weft/ipam", filepath.Dir(f))
	}
	if c.t.Failed() {
		if c.server != nil {
			c.t.Logf("server log:\n%s", tail(c.server.log.String(), 60))
		}
		for name, s := range c.servers {
			c.t.Logf("%s log:\n%s", name, tail(s.log.String(), 40))
		}
		for name, a := range c.agents {
			c.t.Logf("%s log:\n%s", name, tail(a.log.String(), 30))
		}
		consoles, _ := filepath.Glob(filepath.Join(c.dir, "*", "instances", "*", "output.log"))
		for _, f := range consoles {
			if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "weft-guest") {
				c.t.Logf("console of VM %s:\n%s", filepath.Base(filepath.Dir(f)), tail(string(b), 15))
			}
		}
	}
}

// in is the cluster as seen by subtest t: what fails there fails t.
func (c *cluster) in(t *testing.T) *cluster {
	sub := *c
	sub.t = t
	return &sub
}

func mapValues(m map[string]*proc) []*proc {
	var out []*proc
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// pidsUnder lists processes whose working directory is inside dir.
func pidsUnder(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, dir) {
			out = append(out, pid)
		}
	}
	return out
}

// pidOf finds the process of an instance by its WEFT_INSTANCE variable.
func pidOf(t testing.TB, instance string) int {
	t.Helper()
	// The instance's children (a script's sleep, sync...) inherit its
	// WEFT_INSTANCE, and /proc lists PIDs in string order ("1298" before
	// "806"), so the instance is the one of them whose parent is not one.
	ppids := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool {
			return string(kv) == "WEFT_INSTANCE="+instance
		}) {
			continue
		}
		ppids[pid], _ = procstat.Parent(pid) // 0 if it is gone
	}
	var roots []int
	for pid, ppid := range ppids {
		if _, child := ppids[ppid]; !child {
			roots = append(roots, pid)
		}
	}
	if len(roots) != 1 {
		t.Fatalf("instance %s: want one process at the root of its processes, found %v", instance, roots)
	}
	return roots[0]
}

// waitFor polls cond until it holds; a deadline that passes fails the test.
// The polls start 100 ms apart and spread out to a second: many conditions
// run the CLI (a process of 20-40 ms of CPU, and the server's work), and a
// wait for a VM's move polled that ten times a second for a minute or more,
// on a machine whose CPU the tests share.
func (c *cluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := 100 * time.Millisecond; !cond(); pause = min(pause*5/4, time.Second) {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}

// cliTimeout bounds one CLI command: longer than any --wait the tests ask
// for. A command that outlives it gets SIGQUIT, so its stderr shows where
// it waited, and the test fails with the cluster's logs.
const cliTimeout = 5 * time.Minute

// weft runs the CLI against the cluster.
func (c *cluster) weft(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(append(os.Environ(), "WEFT_ADDR="+c.api), c.env...)
	cmd.Dir = c.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("weft %s: still running after %v; its stderr:\n%s", strings.Join(args, " "), cliTimeout, tail(errb.String(), 80))
	}
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run weft %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustWeft runs the CLI and fails the test on a non-zero exit.
func (c *cluster) mustWeft(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.weft(args...)
	if code != 0 {
		c.t.Fatalf("weft %s: exit %d: %s%s", strings.Join(args, " "), code, errOut, out)
	}
	return out
}

// service writes a service model for the hello example with the given
// public port and settings, and returns its path. Extra files go into the
// package folder (a file named "unhealthy" makes /healthz fail).
func (c *cluster) service(name string, port, instances int, greeting string, extraFiles ...string) string {
	c.t.Helper()
	dir := filepath.Join(c.dir, "models", name+"-"+greeting)
	pkg := filepath.Join(dir, "package")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		c.t.Fatal(err)
	}
	copyExecutable(c.t, helloBin, filepath.Join(pkg, "hello"))
	for _, f := range extraFiles {
		if err := os.WriteFile(filepath.Join(pkg, f), []byte("x"), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	model := fmt.Sprintf(`name: %s
upgradeDomains: 5
roles:
  - name: web
    kind: web
    runtime: process
    package: ./package
    command: ["./hello"]
    instances: %d
    size: {cpu: 0.1, memory: 64Mi}
    endpoints:
      - {name: http, protocol: http, port: %d}
    health:
      http: {path: /healthz, endpoint: http}
      interval: 250ms
      timeout: 1s
      failures: 2
    settings: {GREETING: %s}
`, name, instances, port, greeting)
	path := filepath.Join(dir, "service.yaml")
	if err := os.WriteFile(path, []byte(model), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// instances returns the service's instances that are meant to run.
func (c *cluster) instances(service string) []api.Instance {
	c.t.Helper()
	all, err := c.client.Instances(context.Background(), service)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []api.Instance
	for _, in := range all {
		if in.Desired == api.DesiredRunning && !in.Draining {
			out = append(out, in)
		}
	}
	return out
}

// healthy counts the service's running, healthy instances; with greeting
// set, only those whose model says so.
func (c *cluster) healthy(service string) int {
	n := 0
	for _, in := range c.instances(service) {
		if in.State == api.StateRunning && in.Health == api.HealthHealthy {
			n++
		}
	}
	return n
}

// get fetches a URL and returns the body, failing on transport errors or non-2xx.
func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body)
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func writeFile(t testing.TB, path, data string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyExecutable copies the program at src to dst, executable.
func copyExecutable(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
