package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driveproc"
	"github.com/weftcloud/weft/internal/procstat"
)

// The multi-host harness: each host is a network namespace with its own
// address on a bridge, as machines on one LAN. The test process reaches
// every host through the bridge; a partition drops traffic between hosts
// (iptables inside a host's namespace) and leaves the test's own path.

type network struct {
	t      testing.TB
	id     string // short, unique per test: names of links and namespaces
	subnet string // "10.X.Y"
	bridge string
	hosts  []*host
}

type host struct {
	net  *network
	name string
	ns   string
	ip   string
	link string // the host's end of its veth pair, in the root namespace
}

// newNetwork makes a bridge for hosts, or skips where the harness cannot
// run (it needs root, ip and iptables).
func newNetwork(t testing.TB) *network {
	t.Helper()
	requireE2E(t)
	if os.Geteuid() != 0 {
		t.Skip("the multi-host harness needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the multi-host harness needs %s (apt-get install iproute2 iptables)", tool)
		}
	}
	id, subnet := newNetworkNames()
	n := &network{t: t, id: id, subnet: subnet, bridge: "wb" + id}
	t.Cleanup(n.close)
	n.must("ip", "link", "add", n.bridge, "type", "bridge")
	n.must("ip", "addr", "add", n.subnet+".254/24", "dev", n.bridge)
	n.must("ip", "link", "set", n.bridge, "up")
	// Hosts with Docker filter bridged traffic (FORWARD policy DROP).
	n.must("iptables", "-I", "FORWARD", "-i", n.bridge, "-o", n.bridge, "-j", "ACCEPT")
	return n
}

// newNetworkNames picks a network's id and subnet, each unlike any other
// network's of this run: tests that do not cut links run their networks
// side by side.
func newNetworkNames() (id, subnet string) {
	networksMu.Lock()
	defer networksMu.Unlock()
	for {
		id = fmt.Sprintf("%04x", rand.IntN(1<<16))
		subnet = fmt.Sprintf("10.%d.%d", 100+rand.IntN(100), rand.IntN(250))
		if !networksGiven[id] && !networksGiven[subnet] {
			networksGiven[id], networksGiven[subnet] = true, true
			return id, subnet
		}
	}
}

var (
	networksMu    sync.Mutex
	networksGiven = map[string]bool{}
)

func (n *network) must(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// addHost makes a host with the next address.
func (n *network) addHost(name string) *host {
	i := len(n.hosts) + 1
	h := &host{net: n, name: name, ns: "wn" + n.id + name, ip: fmt.Sprintf("%s.%d", n.subnet, i), link: fmt.Sprintf("wv%s%d", n.id, i)}
	n.must("ip", "netns", "add", h.ns)
	n.must("ip", "link", "add", h.link, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
	n.must("ip", "link", "set", h.link, "master", n.bridge, "up")
	n.must("ip", "-n", h.ns, "addr", "add", h.ip+"/24", "dev", "eth0")
	n.must("ip", "-n", h.ns, "link", "set", "eth0", "up")
	n.must("ip", "-n", h.ns, "link", "set", "lo", "up")
	n.hosts = append(n.hosts, h)
	return h
}

func (n *network) close() {
	for _, h := range n.hosts {
		exec.Command("ip", "netns", "delete", h.ns).Run()
		exec.Command("ip", "link", "delete", h.link).Run()
	}
	exec.Command("iptables", "-D", "FORWARD", "-i", n.bridge, "-o", n.bridge, "-j", "ACCEPT").Run()
	exec.Command("ip", "link", "delete", n.bridge).Run()
}

// cutFrom drops every packet between h and the others (both ways), as a
// broken link would; the test process still reaches h.
func (h *host) cutFrom(others ...*host) {
	for _, o := range others {
		h.net.must("ip", "netns", "exec", h.ns, "iptables", "-A", "INPUT", "-s", o.ip, "-j", "DROP")
		h.net.must("ip", "netns", "exec", h.ns, "iptables", "-A", "OUTPUT", "-d", o.ip, "-j", "DROP")
	}
}

// cutRaftFrom drops only the Raft traffic between h and the others (the
// servers' Raft port, 7071 next to their API's 7070): they elect a leader
// among themselves while their API and storage traffic with h goes on.
func (h *host) cutRaftFrom(others ...*host) {
	for _, o := range others {
		for _, port := range []string{"--dport", "--sport"} {
			h.net.must("ip", "netns", "exec", h.ns, "iptables", "-A", "INPUT", "-s", o.ip, "-p", "tcp", port, "7071", "-j", "DROP")
			h.net.must("ip", "netns", "exec", h.ns, "iptables", "-A", "OUTPUT", "-d", o.ip, "-p", "tcp", port, "7071", "-j", "DROP")
		}
	}
}

// heal removes h's partitions.
func (h *host) heal() { h.net.must("ip", "netns", "exec", h.ns, "iptables", "-F") }

// moveLeadership makes the servers on hosts elect a leader other than the
// one on from, which leads now: from's Raft traffic is cut until the
// others agree on another leader, and healed then. That is normally
// sooner than from's storage lease runs out (it hears from no leader
// meanwhile), so the storage placement stays as it was; otherwise from,
// if the storage primary, starts again under a new epoch.
func (c *cluster) moveLeadership(from *host, hosts []*host) {
	c.t.Helper()
	var others []*host
	for _, h := range hosts {
		if h != from {
			others = append(others, h)
		}
	}
	agreeOnAnother := func(hs []*host) func() bool {
		return func() bool {
			seen := map[string]bool{}
			for _, h := range hs {
				seen[leaderSeenBy(c.clientFor(c.servers[h.name].addr))] = true
			}
			return len(seen) == 1 && !seen[""] && !seen[from.name]
		}
	}
	from.cutRaftFrom(others...)
	c.waitFor("the others electing a leader without "+from.name, 20*time.Second, agreeOnAnother(others))
	from.heal()
	c.waitFor("every server following the new leader", 20*time.Second, agreeOnAnother(hosts))
}

// startIn runs weft on host h (through `ip netns exec`, which execs it:
// the process is weft itself).
func (c *cluster) startIn(h *host, name string, args ...string) *proc {
	c.t.Helper()
	return c.startCmd(name, exec.Command("ip", append([]string{"netns", "exec", h.ns, weftBin}, args...)...))
}

// startInNetOf runs weft in h's network namespace alone (nsenter): unlike
// `ip netns exec`, which mounts a /sys of its own without the cgroup
// hierarchies, it leaves the mounts as they are, which runc needs.
func (c *cluster) startInNetOf(h *host, name string, args ...string) *proc {
	c.t.Helper()
	return c.startCmd(name, exec.Command("nsenter", append([]string{"--net=/run/netns/" + h.ns, weftBin}, args...)...))
}

func (c *cluster) startCmd(name string, cmd *exec.Cmd) *proc {
	c.t.Helper()
	p := &proc{name: name, cmd: cmd, log: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Dir = p.log, p.log, c.dir
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p
}

// newHostServers starts a controller on each host: one server, or a
// cluster of them, with extra flags.
func newHostServers(t testing.TB, n *network, hosts []*host, extra ...string) *cluster {
	var addrs, ips []string
	for _, h := range hosts {
		addrs = append(addrs, h.ip+":7070")
		ips = append(ips, h.ip)
	}
	// Servers not on loopback talk TLS.
	sec := tlsInit(t, ips...)
	c := &cluster{t: t, dir: t.TempDir(), servers: map[string]*proc{}, agents: map[string]*proc{},
		agentFlags: append(sec.agentFlags(), fastAgent...), sec: sec, env: sec.env()}
	t.Cleanup(c.cleanup)
	for _, h := range hosts {
		args := []string{"server", "--name", h.name, "--data", c.dir + "/" + h.name,
			"--listen", h.ip + ":7070", "--lb-host", h.ip, "--no-storage"}
		args = append(args, fastServer...)
		args = append(append(args, sec.serverFlags()...), extra...)
		if len(hosts) > 1 {
			args = append(args, "--bootstrap-expect", fmt.Sprint(len(hosts)), "--join", strings.Join(addrs, ","))
		}
		c.servers[h.name] = c.startIn(h, h.name, args...)
		c.servers[h.name].addr = h.ip + ":7070"
	}
	c.apiArg = strings.Join(addrs, ",")
	c.client = c.clientFor(c.apiArg)
	c.api = strings.Join(c.client.Addrs(), ",")
	c.waitFor("a leader", 30*time.Second, func() bool { return c.leader() != "" })
	for _, a := range addrs {
		c.waitFor("server "+a+" up", 30*time.Second, func() bool {
			_, err := c.clientFor(a).Status(context.Background())
			return err == nil
		})
	}
	return c
}

// startHostAgents starts an agent on each host, named after it, and waits
// until every node is ready.
func (c *cluster) startHostAgents(hosts ...*host) {
	c.t.Helper()
	c.startHostAgentsWith(c.startIn, hosts...)
}

// startContainerAgents starts agents that can run containers (see
// startInNetOf) on hosts.
func (c *cluster) startContainerAgents(hosts ...*host) {
	c.t.Helper()
	c.startHostAgentsWith(c.startInNetOf, hosts...)
}

func (c *cluster) startHostAgentsWith(start func(h *host, name string, args ...string) *proc, hosts ...*host) {
	c.t.Helper()
	for _, h := range hosts {
		c.agents[h.name] = start(h, h.name, c.hostAgentArgs(h)...)
	}
	c.waitFor(fmt.Sprintf("%d nodes ready", len(hosts)), 20*time.Second, func() bool {
		nodes, err := c.client.Nodes(context.Background())
		ready := 0
		for _, nd := range nodes {
			if nd.State == api.NodeReady {
				ready++
			}
		}
		return err == nil && ready == len(hosts)
	})
}

// hostAgentArgs are the arguments of the agent on h, named after it.
func (c *cluster) hostAgentArgs(h *host) []string {
	return append([]string{"agent", "--server", c.api, "--name", h.name,
		"--data", c.dir + "/" + h.name, "--host", h.ip, "--listen", h.ip + ":0", "--cpu", "4", "--memory", "4Gi"}, c.agentFlags...)
}

// TestPartitionedLeaderCannotCommit cuts the leader off from the other two
// servers: a write sent to it is not acknowledged, the majority elects a
// new leader and takes writes, and when the link heals the old leader
// follows and has every acknowledged write.
func TestPartitionedLeaderCannotCommit(t *testing.T) {
	netnsTest(t)
	n := newNetwork(t)
	hosts := []*host{n.addHost("h1"), n.addHost("h2"), n.addHost("h3")}
	c := newHostServers(t, n, hosts)
	byName := map[string]*host{}
	for _, h := range hosts {
		byName[h.name] = h
	}
	old := byName[c.leader()]
	var rest []*host
	for _, h := range hosts {
		if h != old {
			rest = append(rest, h)
		}
	}
	c.mustWeft("storage", "account", "create", "before")
	// A tenant's token, revoked while the leader is cut off: the cut-off
	// server never applies the revocation, and must not answer the token
	// from its own copy either.
	if _, err := c.client.CreateTenant(context.Background(), api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.client.CreateToken(context.Background(), api.CreateToken{Tenant: "acme", Role: api.AccessOwner})
	if err != nil {
		t.Fatal(err)
	}
	old.cutFrom(rest...)

	isolated := c.clientFor(old.ip + ":7070")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	_, err = isolated.CreateStorageAccount(ctx, "minority")
	cancel()
	if err == nil {
		t.Error("the cut-off leader acknowledged a write")
	}
	majority := c.clientFor(rest[0].ip + ":7070," + rest[1].ip + ":7070")
	c.waitFor("a write through the majority", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := majority.CreateStorageAccount(ctx, "majority")
		return err == nil
	})
	if _, err := majority.RevokeToken(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	asRevoked := client.New("https://" + old.ip + ":7070").WithTLS(&tls.Config{RootCAs: c.sec.pool}).WithToken(tok.Token)
	ctx, cancel = context.WithTimeout(context.Background(), 4*time.Second)
	var stale []api.Service
	_, err = asRevoked.Do(ctx, "GET", "/v1/services", map[string][]string{"stale": {""}}, nil, &stale)
	cancel()
	if err == nil {
		t.Error("the cut-off server answered a stale read to a token revoked meanwhile")
	}

	old.heal()
	c.waitFor("the old leader following with every write", 20*time.Second, func() bool {
		var list []api.StorageAccount
		_, err := isolated.Do(context.Background(), "GET", "/v1/storage/accounts", map[string][]string{"stale": {""}}, nil, &list)
		names := map[string]bool{}
		for _, a := range list {
			names[a.Name] = true
		}
		return err == nil && names["before"] && names["majority"]
	})
	accounts, err := majority.StorageAccounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accounts {
		if a.Name == "minority" {
			t.Error("the write the cut-off leader took survived: it was never acknowledged, but it should not be committed either")
		}
	}
}

// TestPartitionedNodeIsReplacedAndStopsItsCopies cuts a node host off from
// the controller: its instance is recreated on the other node, and when the
// link heals, the node stops the copy it no longer owns.
func TestPartitionedNodeIsReplacedAndStopsItsCopies(t *testing.T) {
	netnsTest(t)
	n := newNetwork(t)
	srv, h2, h3 := n.addHost("s"), n.addHost("n2"), n.addHost("n3")
	c := newHostServers(t, n, []*host{srv})
	c.startHostAgents(h2, h3)
	port := freePort(t)
	c.mustWeft("deploy", "-f", c.service("web", port, 2, "hello"), "--wait")
	var cut api.Instance
	for _, in := range c.instances("web") {
		if in.Node == "n3" {
			cut = in
		}
	}
	if cut.ID == "" {
		t.Fatalf("no instance on n3: %+v", c.instances("web"))
	}
	h3.cutFrom(srv)
	c.waitFor("n3 down and its instance replaced on n2", 30*time.Second, func() bool {
		healthy := 0
		for _, in := range c.instances("web") {
			if in.ID == cut.ID {
				return false
			}
			if in.Node == "n2" && in.Health == api.HealthHealthy {
				healthy++
			}
		}
		return healthy == 2
	})
	pid := pidOf(t, cut.ID) // the old copy still runs, cut off
	h3.heal()
	c.waitFor("n3 back and its old copy stopped", 30*time.Second, func() bool {
		return syscallAlive(pid) == false
	})
	if body := get(t, fmt.Sprintf("http://%s:%d/", srv.ip, port)); !strings.Contains(body, "hello") {
		t.Errorf("the service answers %q after the heal", body)
	}
}

// syscallAlive reports whether pid still runs (and is not a zombie).
func syscallAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// TestPartitionedPersistentVMIsFenced cuts the node host of a persistent
// VM off from the server, which also holds the storage service that serves
// its disk: the VM comes up on the other node with what it synced before,
// its old copy is killed by its own agent once the agent has not reached
// the controller for its fence time, and when the link heals exactly one
// copy runs and it still writes its disk (the healed node took nothing
// back).
func TestPartitionedPersistentVMIsFenced(t *testing.T) {
	vmTest(t)
	hold(t, netnsSlot)
	n := newNetwork(t)
	srv := n.addHost("s")
	nodes := map[string]*host{"n2": n.addHost("n2"), "n3": n.addHost("n3")}
	c := newHostServers(t, n, []*host{srv}, "--no-storage=false")
	c.startHostAgents(nodes["n2"], nodes["n3"])
	c.mustWeft("image", "build", "tiny")
	c.mustWeft("vm", "create", "keeper", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi", "--wait")
	vm := c.vm("keeper")
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "echo precious > /root/data && sync")
	old, oldQEMU := nodes[vm.Node], qemuOf(t, vm.Instance)

	old.cutFrom(srv)
	c.waitFor("the VM running on the other node", time.Minute, func() bool {
		v := c.vm("keeper")
		return v.Node != "" && v.Node != old.name && v.State == api.StateRunning
	})
	c.waitFor("the cut-off copy killed by its agent", 30*time.Second, func() bool { return !syscallAlive(oldQEMU) })
	if out := c.mustWeft("vm", "exec", "keeper", "--", "cat", "/root/data"); strings.TrimSpace(out) != "precious" {
		t.Errorf("the file the VM synced before the partition reads %q", out)
	}

	old.heal()
	c.waitFor("the cut-off node back", 30*time.Second, func() bool {
		nd, err := c.client.Node(context.Background(), old.name)
		return err == nil && nd.State == api.NodeReady
	})
	c.waitFor("the fencing reported", 30*time.Second, func() bool {
		return strings.Contains(c.mustWeft("events"), "instance.fenced")
	})
	if vms := qemusOf(c.dir); len(vms) != 1 || len(c.instances("keeper")) != 1 {
		t.Errorf("after the heal: QEMU processes %v, instances %+v; want one of each", vms, c.instances("keeper"))
	}
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "echo after | dd of=/root/after conv=fsync")
}

// TestPartitionedPersistentProcessIsFenced cuts the node host of a
// persistent process instance off from the server (which also serves the
// storage holding its drive): the instance comes back on the other node
// with its drive, the cut-off copy is stopped by its own agent, and the
// drive's log never has a line of the old copy after the new one's first:
// the instance never ran twice on its drive. When the link heals, one copy
// runs.
func TestPartitionedPersistentProcessIsFenced(t *testing.T) {
	netnsTest(t)
	requireDrives(t)
	n := newNetwork(t)
	srv := n.addHost("s")
	nodes := map[string]*host{"n2": n.addHost("n2"), "n3": n.addHost("n3")}
	c := newHostServers(t, n, []*host{srv}, "--no-storage=false")
	c.startHostAgents(nodes["n2"], nodes["n3"])
	dir := filepath.Join(c.dir, "models", "writer")
	os.MkdirAll(filepath.Join(dir, "package"), 0o755)
	// One line a tenth of a second, each synced before the next.
	writeFile(t, filepath.Join(dir, "package", "writer.sh"), `#!/bin/sh
i=0
while :; do
  i=$((i+1))
  echo "$WEFT_INSTANCE $i" >> "$WEFT_DRIVE_STATE/log" && sync "$WEFT_DRIVE_STATE/log" || exit 1
  sleep 0.1
done
`)
	os.Chmod(filepath.Join(dir, "package", "writer.sh"), 0o755)
	model := writeFile(t, filepath.Join(dir, "service.yaml"), `name: writer
roles:
  - name: w
    kind: worker
    runtime: process
    package: ./package
    command: ["./writer.sh"]
    instances: 1
    persistence: persistent
    size: {cpu: 0.1, memory: 64Mi}
    drives: [{name: state, size: 32Mi}]
`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	first := c.instances("writer")[0]
	old := nodes[first.Node]
	oldPid := pidOf(t, first.ID)
	// The agents' mounts are in the mount namespaces `ip netns exec` made.
	driveLog := func(in api.Instance) (string, error) {
		path := filepath.Join(c.dir, in.Node, "drives", in.ID, "state", "mnt", "log")
		out, err := exec.Command("nsenter", "-t", strconv.Itoa(c.agents[in.Node].cmd.Process.Pid), "-m", "cat", path).Output()
		return string(out), err
	}
	c.waitFor("the first copy writing", 20*time.Second, func() bool {
		log, err := driveLog(first)
		return err == nil && strings.Count(log, "\n") >= 5
	})

	oldServer, err := driveproc.Find(filepath.Join(c.dir, first.Node, "drives", first.ID, "state"))
	if err != nil {
		t.Fatalf("the first copy's drive server: %v", err)
	}

	old.cutFrom(srv)
	var moved api.Instance
	c.waitFor("the instance writing on the other node", time.Minute, func() bool {
		for _, in := range c.instances("writer") {
			if in.Node != old.name && in.State == api.StateRunning {
				if log, err := driveLog(in); err == nil && strings.Contains(log, in.ID+" ") {
					moved = in
					return true
				}
			}
		}
		return false
	})
	c.waitFor("the cut-off copy stopped by its agent", 30*time.Second, func() bool { return !syscallAlive(oldPid) })

	old.heal()
	c.waitFor("the cut-off node back", 30*time.Second, func() bool {
		nd, err := c.client.Node(context.Background(), old.name)
		return err == nil && nd.State == api.NodeReady
	})
	time.Sleep(time.Second) // the healed node's agent acts on what it is told
	// The fenced copy's drive is stopped too: its server unmounts it once
	// ext4's last writes, refused under the lease the new copy took, are
	// done with.
	c.waitFor("the cut-off copy's drive server stopped", 2*time.Minute, func() bool {
		return !procstat.Alive(oldServer.PID(), oldServer.Start())
	})
	log, err := driveLog(moved)
	if err != nil {
		t.Fatal(err)
	}
	newStarted := false
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		switch {
		case strings.HasPrefix(line, moved.ID+" "):
			newStarted = true
		case newStarted:
			t.Fatalf("the drive's log has %q after the new copy's first line: two copies wrote it", line)
		}
	}
	if ins := c.instances("writer"); len(ins) != 1 || ins[0].ID != moved.ID {
		t.Errorf("after the heal: instances %+v, want only %s", ins, moved.ID)
	}
}
