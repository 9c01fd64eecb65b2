package e2e

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestTenantNetworksAcrossHosts: two tenants have a network of the same
// name on the same CIDR, and a container service of the same name on it,
// with an instance on each of three hosts (network namespaces with real
// agents), so that slot by slot the two tenants' instances hold the same
// addresses. Each instance reaches its tenant's instance on the next host
// by address and by DNS name (INSTANCE.ROLE.SERVICE.internal, and
// ROLE.SERVICE.internal lists its tenant's healthy instances), never the
// other tenant's at the same address; the published endpoint still
// answers through the load balancer. A restarted agent carries on; a
// process instance on the network is reached there too; the ports of a
// deleted service's instances, then its network, are taken off the hosts.
func TestTenantNetworksAcrossHosts(t *testing.T) {
	parallel(t) // no link is cut: no netnsTest slot
	requireRunc(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("the test needs nsenter (apt-get install util-linux)")
	}
	n := newNetwork(t)
	h1, h2, h3 := n.addHost("h1"), n.addHost("h2"), n.addHost("h3")
	hosts := []*host{h1, h2, h3}
	c := newHostServers(t, n, []*host{h1}, append([]string{"--no-storage=false"}, agentRestartTTL...)...) // images live in the storage service
	t.Cleanup(func() { c.removeGatewayNamespaces(h1.name, h2.name, h3.name) })
	c.startContainerAgents(hosts...)
	c.helloImage("hello:v1", "one")
	c.mustWeft("tenant", "create", "acme")
	c.mustWeft("network", "create", "net", "--cidr", "10.30.0.0/24")
	c.mustWeft("--tenant", "acme", "network", "create", "net", "--cidr", "10.30.0.0/24")

	// The default tenant's web role is published on port; acme's listens
	// on hello's default port, 8080, and publishes nothing.
	port := freePort(t)
	c.mustWeft("deploy", "-f", c.networkModelN("default", 3, fmt.Sprintf(`kind: web
    endpoints:
      - {name: http, protocol: http, port: %d}
    health:
      http: {path: /healthz, endpoint: http}
      interval: 250ms
      timeout: 1s
      failures: 2`, port), containerHello), "--wait", "--timeout", "90s")
	c.mustWeft("--tenant", "acme", "deploy", "-f", c.networkModelN("acme", 3, "kind: worker", containerHello), "--wait", "--timeout", "90s")
	mine, theirs := c.tenantInstances(""), c.tenantInstances("acme")
	for _, ins := range [][]api.Instance{mine, theirs} {
		nodes := map[string]bool{}
		for _, in := range ins {
			nodes[in.Node] = true
		}
		if len(ins) != 3 || len(nodes) != 3 {
			t.Fatalf("want one instance on each host: %+v", ins)
		}
	}
	// Slot by slot the two tenants hold the same addresses.
	addrs := func(ins []api.Instance) []string {
		var out []string
		for _, in := range ins {
			out = append(out, in.PrivateAddress)
		}
		slices.Sort(out)
		return out
	}
	if a, b := addrs(mine), addrs(theirs); !slices.Equal(a, b) || a[0] != "10.30.0.2" {
		t.Fatalf("private addresses: default tenant %v, acme %v; want the same three from 10.30.0.2", a, b)
	}

	// An instance listens on its own port (WEFT_PORT_HTTP), on the
	// network as on its node; the load balancer publishes port. Around
	// the ring of hosts, each instance asks the next one by address and
	// by name, and acme's the same, at the same addresses.
	var last string
	t.Cleanup(func() {
		if t.Failed() && last != "" {
			t.Logf("the last answer: %s", last)
		}
	})
	for i := range mine {
		a, b := mine[i], mine[(i+1)%len(mine)]
		c.waitFor(fmt.Sprintf("%s on %s reaching %s on %s by address", a.ID, a.Node, b.ID, b.Node), 20*time.Second, func() bool {
			out, code := c.getFrom("", a.ID, b.PrivateAddress, b.Ports["http"])
			last = fmt.Sprintf("%s to %s: exit %d: %s", a.ID, b.ID, code, out)
			return code == 0 && strings.Contains(out, b.ID)
		})
		// By name: the network's DNS server (in resolv.conf) gives b's
		// address. busybox's nslookup asks the server itself; its wget
		// and nc cannot resolve names (static glibc without NSS modules).
		if got := c.lookup("", a.ID, b.ID+".web.shop.internal"); !slices.Equal(got, []string{b.PrivateAddress}) {
			t.Errorf("%s.web.shop.internal from %s: %v, want [%s]", b.ID, a.ID, got, b.PrivateAddress)
		}
		// acme's instance at b's address listens on 8080; the default
		// tenant's do not: reaching it from a would be crossing networks.
		if out, code := c.getFrom("", a.ID, b.PrivateAddress, 8080); code == 0 && out != "" {
			t.Errorf("the default tenant's %s reached port 8080 at %s, which only acme's instance there listens on: %q", a.ID, b.PrivateAddress, out)
		}

		ta, tb := theirs[i], theirs[(i+1)%len(theirs)]
		c.waitFor(fmt.Sprintf("acme's %s on %s reaching %s on %s by address", ta.ID, ta.Node, tb.ID, tb.Node), 20*time.Second, func() bool {
			out, code := c.getFrom("acme", ta.ID, tb.PrivateAddress, 8080)
			last = fmt.Sprintf("acme's %s to %s: exit %d: %s", ta.ID, tb.ID, code, out)
			return code == 0 && strings.Contains(out, tb.ID)
		})
		if got := c.lookup("acme", ta.ID, tb.ID+".web.shop.internal"); !slices.Equal(got, []string{tb.PrivateAddress}) {
			t.Errorf("acme's %s.web.shop.internal from %s: %v, want [%s]", tb.ID, ta.ID, got, tb.PrivateAddress)
		}
		// The default tenant's b by name, and at its address on its own
		// port (where acme's instance does not listen): never.
		if got := c.lookup("acme", ta.ID, b.ID+".web.shop.internal"); len(got) != 0 {
			t.Errorf("acme's network resolves the default tenant's instance %s: %v", b.ID, got)
		}
		if out, code := c.getFrom("acme", ta.ID, b.PrivateAddress, b.Ports["http"]); code == 0 && out != "" {
			t.Errorf("acme's %s reached the default tenant's port at %s: %q", ta.ID, b.PrivateAddress, out)
		}
	}
	// ROLE.SERVICE names every healthy instance of the tenant's role.
	a, b := mine[0], mine[1]
	c.waitFor("web.shop.internal naming the three healthy instances", 20*time.Second, func() bool {
		return slices.Equal(c.lookup("", a.ID, "web.shop.internal"), addrs(mine))
	})
	if got := c.lookup("", a.ID, "web"); !slices.Equal(got, addrs(mine)) {
		t.Errorf("web, through the search domain shop.internal: %v, want %v", got, addrs(mine))
	}
	if got := c.lookup("acme", theirs[0].ID, "web"); !slices.Equal(got, addrs(theirs)) {
		t.Errorf("acme's web: %v, want %v", got, addrs(theirs))
	}

	// The published endpoint answers through the load balancer.
	if body := get(t, fmt.Sprintf("http://%s:%d/", h1.ip, port)); !strings.Contains(body, "one") {
		t.Errorf("the load balancer answered %q", body)
	}

	// b's agent killed and started again: it adopts b and carries the
	// networks as they were, its DNS server answers again, and a still
	// reaches b.
	// While it is down, a port of an instance it no longer runs is left on
	// its bridge (as by an instance stopped while no agent ran): the
	// restarted agent takes it off.
	c.kill9(c.agents[b.Node])
	hb := map[string]*host{h1.name: h1, h2.name: h2, h3.name: h3}[b.Node]
	vni := c.networkVNI("")
	// Named as internal/overlay names an endpoint's port: the VNI, 'e', and
	// 28 bits of the FNV-1a hash of the endpoint's ID.
	gh := fnv.New32a()
	gh.Write([]byte("shop-web-9-gone"))
	ghost := fmt.Sprintf("w%06xe%07x", vni, gh.Sum32()&0xfffffff)
	n.must("ip", "-n", hb.ns, "link", "add", ghost, "type", "veth", "peer", "name", "ghost0")
	n.must("ip", "-n", hb.ns, "link", "set", ghost, "alias", "weft endpoint shop-web-9-gone", "master", fmt.Sprintf("w%06xb", vni))
	c.agents[b.Node] = c.startInNetOf(hb, b.Node, c.hostAgentArgs(hb)...)
	c.waitFor("the stale port taken off", 20*time.Second, func() bool {
		out, err := exec.Command("ip", "-n", hb.ns, "-o", "link").CombinedOutput()
		return err == nil && !strings.Contains(string(out), ghost)
	})
	c.waitFor("b's host's DNS server listening again after its agent restarted", 20*time.Second, func() bool {
		out, err := exec.Command("ip", "netns", "exec", c.gatewayNetns(hb.name, vni), "ss", "-Hlun").CombinedOutput()
		return err == nil && strings.Contains(string(out), "10.30.0.1:53")
	})
	if got := c.lookup("", b.ID, a.ID+".web.shop.internal"); !slices.Equal(got, []string{a.PrivateAddress}) {
		t.Errorf("%s.web.shop.internal from b after its agent restarted: %v", a.ID, got)
	}
	if out, code := c.getFrom("", a.ID, b.PrivateAddress, b.Ports["http"]); code != 0 || !strings.Contains(out, b.ID) {
		t.Errorf("after b's agent restarted, a asking b: exit %d, %q", code, out)
	}
	if got := c.tenantInstances(""); len(got) != 3 || !slices.ContainsFunc(got, func(in api.Instance) bool { return in.ID == b.ID && in.Restarts == b.Restarts }) {
		t.Errorf("b was not adopted as it ran: %+v", got)
	}

	// A process role on the network runs in a namespace of its own with
	// its address: a container reaches it, and it asks the network's DNS
	// server at its gateway address (TestNetworkRulesAndProcessDNS has it
	// resolve names through its resolv.conf).
	c.mustWeft("deploy", "-f", c.toolsModel("net"), "--wait", "--timeout", "60s")
	var tool api.Instance
	for _, in := range c.instances("tools") {
		tool = in
	}
	// A worker without a health probe is running before it listens: ask
	// until it answers.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		out, code := c.getFrom("", a.ID, tool.PrivateAddress, 8080)
		if code == 0 && strings.Contains(out, tool.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a container asking the process instance at %s:8080: exit %d, %q", tool.PrivateAddress, code, out)
			break
		}
	}
	if out, code := c.execIn("", tool.ID, "busybox", "nslookup", a.ID+".web.shop.internal", "10.30.0.1"); code != 0 || !strings.Contains(out, a.PrivateAddress) {
		t.Errorf("the process instance asking the network's DNS for %s: exit %d, %q", a.ID, code, out)
	}

	// acme's service deleted: its ports, then its network, leave both hosts.
	c.mustWeft("--tenant", "acme", "service", "delete", "shop")
	acmeVNI := c.networkVNI("acme")
	for _, h := range hosts {
		c.waitFor("acme's network gone from "+h.name, 30*time.Second, func() bool {
			out, err := exec.Command("ip", "-n", h.ns, "-o", "link").CombinedOutput()
			return err == nil && !strings.Contains(string(out), fmt.Sprintf("w%06x", acmeVNI))
		})
	}
	if out, code := c.getFrom("", a.ID, b.PrivateAddress, b.Ports["http"]); code != 0 || !strings.Contains(out, b.ID) {
		t.Errorf("after acme's service went, the default tenant's instances: exit %d, %q", code, out)
	}
}

// getFrom asks for / at addr:port from inside tenant's instance id (busybox
// nc, with a five-second timeout) and returns the answer and the exit code.
func (c *cluster) getFrom(tenant, id, addr string, port int) (string, int) {
	c.t.Helper()
	script := fmt.Sprintf(`/busybox printf 'GET / HTTP/1.0\r\n\r\n' | /busybox nc -w 5 %s %d`, addr, port)
	return c.execIn(tenant, id, "/busybox", "sh", "-c", script)
}

// lookup resolves name from inside tenant's instance id (busybox
// nslookup, which asks the server in its resolv.conf) and returns the
// addresses of the answer, sorted; none when the name is unknown.
func (c *cluster) lookup(tenant, id, name string) []string {
	c.t.Helper()
	out, _ := c.execIn(tenant, id, "/busybox", "nslookup", name)
	var addrs []string
	answer := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Name:":
			answer = true
		case answer && len(f) == 2 && f[0] == "Address:":
			addrs = append(addrs, f[1])
		}
	}
	slices.Sort(addrs)
	return addrs
}

// containerHello runs a role from the hello image.
const containerHello = "runtime: container\n    image: hello:v1"

// networkModel writes a model of service shop, named name: one role, web,
// of two hello instances on network net, with its kind (and what goes
// with it) and its runtime (and what it runs) given.
func (c *cluster) networkModel(name, kind, runtime string) string {
	c.t.Helper()
	return c.networkModelN(name, 2, kind, runtime)
}

// networkModelN is networkModel with n instances.
func (c *cluster) networkModelN(name string, n int, kind, runtime string) string {
	c.t.Helper()
	dir := filepath.Join(c.dir, "models", "net-"+name)
	if err := os.MkdirAll(filepath.Join(dir, "package"), 0o755); err != nil {
		c.t.Fatal(err)
	}
	copyExecutable(c.t, helloBin, filepath.Join(dir, "package", "hello"))
	return writeFile(c.t, filepath.Join(dir, "service.yaml"), fmt.Sprintf(`name: shop
upgradeDomains: 2
roles:
  - name: web
    %s
    instances: %d
    size: {cpu: 0.1, memory: 64Mi}
    network: net
    %s
`, runtime, n, kind))
}

// tenantInstances lists the running instances of tenant's service shop
// ("" for the default tenant).
func (c *cluster) tenantInstances(tenant string) []api.Instance {
	c.t.Helper()
	var all, out []api.Instance
	if err := json.Unmarshal([]byte(c.mustWeft(c.asTenant(tenant, "instances", "-o", "json")...)), &all); err != nil {
		c.t.Fatal(err)
	}
	for _, in := range all {
		if in.Service == "shop" && in.Desired == api.DesiredRunning && !in.Draining {
			out = append(out, in)
		}
	}
	return out
}

// networkVNI is the VNI of tenant's network net.
func (c *cluster) networkVNI(tenant string) int {
	c.t.Helper()
	var nw api.Network
	if err := json.Unmarshal([]byte(c.mustWeft(c.asTenant(tenant, "network", "show", "net", "-o", "json")...)), &nw); err != nil {
		c.t.Fatal(err)
	}
	return nw.VNI
}

// execIn runs a command in tenant's instance id and returns its output and
// exit code.
func (c *cluster) execIn(tenant, id string, cmd ...string) (string, int) {
	c.t.Helper()
	out, errOut, code := c.weft(c.asTenant(tenant, append([]string{"exec", id, "--"}, cmd...)...)...)
	return out + errOut, code
}

func (c *cluster) asTenant(tenant string, args ...string) []string {
	if tenant == "" {
		return args
	}
	return append([]string{"--tenant", tenant}, args...)
}

// removeGatewayNamespaces deletes the networks' gateway namespaces the
// agents of hosts left under /run/netns (shared by every host of the
// harness, and every test run on the machine).
func (c *cluster) removeGatewayNamespaces(hosts ...string) {
	for _, name := range hosts {
		matches, _ := filepath.Glob("/run/netns/" + c.gatewayNetnsPrefix(name) + "*")
		for _, m := range matches {
			exec.Command("ip", "netns", "delete", filepath.Base(m)).Run()
		}
	}
}

// gatewayNetnsPrefix starts the names of the gateway namespaces of the
// agent of node (hostAgentArgs' data directory), as internal/agent's
// agentID and netnsPrefix name them.
func (c *cluster) gatewayNetnsPrefix(node string) string {
	h := fnv.New32a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(filepath.Join(c.dir, node)))
	return fmt.Sprintf("weft-net-%08x-", h.Sum32())
}

// gatewayNetns names the gateway namespace of network vni on node.
func (c *cluster) gatewayNetns(node string, vni int) string {
	return fmt.Sprintf("%s%06x", c.gatewayNetnsPrefix(node), vni)
}
