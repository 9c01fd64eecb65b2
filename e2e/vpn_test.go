package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/overlay"
	"github.com/weftcloud/weft/internal/wireguard"
)

// processHello runs a role from examples/hello as a process instance
// (networkModel copies it into the package).
const processHello = "runtime: process\n    package: ./package\n    command: [./hello]"

// TestVPNReachesOnlyItsNetwork: acme's network has a VPN gateway, made
// with `weft network vpn create`; an "on-premises" namespace on the hosts'
// LAN runs WireGuard with the printed configuration (through the same
// wireguard-go library, in this test's process) and reaches acme's process
// instances on two hosts through it, and they reach it back. It reaches
// nothing else, even when it sends everything into the tunnel: not the
// default tenant's instances on a network with the same CIDR, nor on
// another CIDR, not another host's own address (the server's), not the
// harness's. A reader cannot change the gateway and another tenant cannot
// see it; its agent killed and restarted, the gateway serves the same peer
// again. Its node dead (the agent killed, the host cut off), the gateway
// comes up on another of the three hosts and the peer, unchanged, reaches
// acme's instances again (WireGuard follows the gateway's new address);
// deleted, the tunnel and its namespace go.
func TestVPNReachesOnlyItsNetwork(t *testing.T) {
	netnsTest(t)
	// The gateway's agent is restarted below: its node must not be
	// declared down meanwhile, however loaded the machine.
	lab := newVPNLab(t, 3, vpnLabExtra{serverArgs: agentRestartTTL})
	c, n, onprem, opNs := lab.c, lab.n, lab.onprem, lab.opNs
	gwHost, srv := lab.gwHost, lab.srv
	get := func(addr string, port int) (string, error) { return getIn(opNs, addr, port) }

	// Bad input: clear 400s naming the field, nothing made.
	for _, bad := range [][]string{
		{"--peer-endpoint", onprem.ip, "--peer-cidr", "192.168.78.0/24"},
		{"--peer-endpoint", onprem.ip + ":51900", "--peer-cidr", "10.30.0.128/25"},
		{"--peer-endpoint", onprem.ip + ":51900", "--peer-cidr", "192.168.78.0"},
	} {
		_, errOut, code := c.weft(append([]string{"--tenant", "acme", "network", "vpn", "create", "net"}, bad...)...)
		if code == 0 || !strings.Contains(errOut, "peer") {
			t.Errorf("vpn create %v: exit %d, %q; want a refusal naming the field", bad, code, errOut)
		}
	}
	if strings.Contains(c.mustWeft("--tenant", "acme", "network", "vpn", "show", "net", "-o", "json"), lab.conf["PrivateKey"]) {
		t.Error("vpn show prints the peer's private key")
	}
	if _, errOut, code := c.weft("network", "vpn", "show", "net"); code == 0 || !strings.Contains(errOut, "no VPN gateway") {
		t.Errorf("the default tenant's show of its own network net: exit %d, %q", code, errOut)
	}

	// The default tenant's instances on the same CIDR (the addresses of
	// acme's) and on another.
	c.mustWeft("deploy", "-f", c.networkModel("default", "kind: worker", processHello), "--wait", "--timeout", "90s")
	farModel := strings.Replace(strings.Replace(readFile(t, c.networkModel("far", "kind: worker", processHello)), "name: shop", "name: far", 1), "network: net", "network: far", 1)
	c.mustWeft("deploy", "-f", writeFile(t, filepath.Join(c.dir, "models", "net-far", "service.yaml"), farModel), "--wait", "--timeout", "90s")
	acme, mine, far := lab.acme, c.tenantInstances(""), c.instances("far")
	if len(mine) != 2 || len(far) != 2 {
		t.Fatalf("instances: default %+v, far %+v", mine, far)
	}

	// Back: each instance reaches the peer's network (its route goes
	// through the gateway's address).
	lab.answerOnPremises(t)
	for _, ins := range acme {
		if out, code := c.execIn("acme", ins.ID, "busybox", "sh", "-c", askOnPremises("busybox nc")); code != 0 || !strings.Contains(out, "you are "+ins.PrivateAddress+":") {
			t.Errorf("acme's %s reaching 192.168.77.1 on premises: exit %d, %q", ins.ID, code, out)
		}
	}

	// Nothing else: the default tenant's instances (one at the gateway's
	// own address on acme's network, one at an address acme's instance
	// has too), its other network, another host, the harness.
	for _, ins := range mine {
		if body, err := get(ins.PrivateAddress, 8080); err == nil && strings.Contains(body, ins.ID) {
			t.Errorf("on premises reached the default tenant's %s at %s: %q", ins.ID, ins.PrivateAddress, body)
		}
	}
	for _, ins := range far {
		if body, err := get(ins.PrivateAddress, 8080); err == nil {
			t.Errorf("on premises reached the default tenant's network far at %s: %q", ins.PrivateAddress, body)
		}
	}
	if body, err := get(srv.ip, 7070); err == nil {
		t.Errorf("on premises reached the server's host %s (%s:7070) through the tunnel: %q", srv.name, srv.ip, body)
	}
	if body, err := get(n.subnet+".254", 7070); err == nil {
		t.Errorf("on premises reached the harness's address through the tunnel: %q", body)
	}

	// Authorization: a reader of acme changes nothing, the default
	// tenant's token sees no acme gateway.
	tok := c.mustWeft("token", "create", "--tenant", "acme", "--role", "reader", "-o", "json")
	var reader api.NewToken
	if err := json.Unmarshal([]byte(tok), &reader); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"delete", "net"}, {"create", "net", "--peer-endpoint", onprem.ip + ":51901", "--peer-cidr", "192.168.78.0/24"}} {
		if _, errOut, code := c.weft(append([]string{"--token", reader.Token, "network", "vpn"}, args...)...); code == 0 {
			t.Errorf("a reader's vpn %v: exit 0, %q", args, errOut)
		}
	}
	if list := c.mustWeft("network", "vpn", "list", "-o", "json"); strings.Contains(list, "acme") {
		t.Errorf("the default tenant lists acme's gateway: %s", list)
	}

	// The gateway's agent killed and started again: the tunnel (in the
	// agent's process) comes back with the same key and port, and the peer,
	// unchanged, reaches acme's instances again.
	c.kill9(c.agents[gwHost.name])
	c.agents[gwHost.name] = c.startInNetOf(gwHost, gwHost.name, c.hostAgentArgs(gwHost)...)
	for _, ins := range acme {
		c.waitFor("on premises reaching "+ins.ID+" after the gateway's agent restarted", 60*time.Second, func() bool {
			body, err := get(ins.PrivateAddress, 8080)
			return err == nil && strings.Contains(body, ins.ID)
		})
	}

	// The gateway's node dies: its agent killed, the host cut off from
	// the others and from the peer. The gateway comes up on another
	// host, whose address the peer learns from its handshake; acme's
	// instance there, if any, comes up elsewhere too; and the peer, its
	// configuration unchanged, reaches every running acme instance.
	c.kill9(c.agents[gwHost.name])
	var rest []*host
	for _, h := range append([]*host{srv, onprem}, lab.hosts...) {
		if h != gwHost {
			rest = append(rest, h)
		}
	}
	gwHost.cutFrom(rest...)
	var moved api.VPN
	c.waitFor("the gateway moved off "+gwHost.name, 60*time.Second, func() bool {
		out := c.mustWeft("--tenant", "acme", "network", "vpn", "show", "net", "-o", "json")
		return json.Unmarshal([]byte(out), &moved) == nil && moved.Node != gwHost.name
	})
	dead := gwHost
	if gwHost = lab.host(moved.Node); gwHost == nil || moved.Endpoint != fmt.Sprintf("%s:%d", gwHost.ip, lab.vpn.ListenPort) {
		t.Fatalf("the gateway moved to %q at %s", moved.Node, moved.Endpoint)
	}
	c.waitFor("acme's two instances running off "+dead.name, 60*time.Second, func() bool {
		acme = c.tenantInstances("acme")
		return len(acme) == 2 && !slices.ContainsFunc(acme, func(in api.Instance) bool {
			return in.Node == dead.name || in.State != api.StateRunning
		})
	})
	for _, ins := range acme {
		c.waitFor("on premises reaching "+ins.ID+" on "+ins.Node+" through the gateway moved to "+gwHost.name, 60*time.Second, func() bool {
			body, err := get(ins.PrivateAddress, 8080)
			return err == nil && strings.Contains(body, ins.ID)
		})
	}
	if body, err := get(mine[0].PrivateAddress, 8080); err == nil && strings.Contains(body, mine[0].ID) {
		t.Errorf("on premises reached the default tenant's %s through the moved gateway: %q", mine[0].ID, body)
	}

	// Deleted: the peer reaches nothing, the gateway's namespace goes.
	c.mustWeft("--tenant", "acme", "network", "vpn", "delete", "net")
	c.waitFor("the gateway's namespace gone from "+gwHost.name, 30*time.Second, func() bool {
		matches, _ := filepath.Glob("/run/netns/" + c.vpnNetnsPrefix(gwHost.name) + "*")
		return len(matches) == 0
	})
	if body, err := get(acme[0].PrivateAddress, 8080); err == nil {
		t.Errorf("on premises reached %s after the gateway was deleted: %q", acme[0].PrivateAddress, body)
	}
}

// vpnLab is a server's host and agents' hosts whose tenant acme has
// network net (10.30.0.0/24) with service shop (two process instances of
// hello on two hosts) and a VPN gateway to another namespace on the LAN,
// "on premises", which runs WireGuard with the printed configuration, but
// sending everything into the tunnel (AllowedIPs 0.0.0.0/0), as a peer
// that tries its luck; the default tenant has networks net (the same
// CIDR) and far (10.40.0.0/24).
type vpnLab struct {
	c           *cluster
	n           *network
	srv, onprem *host
	hosts       []*host // the agents'
	gwHost      *host
	opNs        string // the on-premises namespace's path
	vpn         api.VPN
	conf        map[string]string // the peer's configuration
	acme        []api.Instance
}

// vpnLabExtra is what a test adds to the lab: flags for the server, and
// what to do once acme's instances run, before the gateway is made.
type vpnLabExtra struct {
	serverArgs []string
	beforeVPN  func(c *cluster)
}

// newVPNLab starts the lab with agents on hosts h1 to hN.
func newVPNLab(t testing.TB, agents int, extra vpnLabExtra) *vpnLab {
	t.Helper()
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("the test needs nsenter (apt-get install util-linux)")
	}
	n := newNetwork(t)
	srv, onprem := n.addHost("s"), n.addHost("op")
	var hosts []*host
	for i := range agents {
		hosts = append(hosts, n.addHost(fmt.Sprintf("h%d", i+1)))
	}
	c := newHostServers(t, n, []*host{srv}, extra.serverArgs...)
	t.Cleanup(func() {
		for _, h := range hosts {
			c.removeGatewayNamespaces(h.name)
			matches, _ := filepath.Glob("/run/netns/" + c.vpnNetnsPrefix(h.name) + "*")
			for _, m := range matches {
				exec.Command("ip", "netns", "delete", filepath.Base(m)).Run()
			}
		}
	})
	c.startContainerAgents(hosts...)
	c.mustWeft("tenant", "create", "acme")
	c.mustWeft("--tenant", "acme", "network", "create", "net", "--cidr", "10.30.0.0/24")
	c.mustWeft("network", "create", "net", "--cidr", "10.30.0.0/24")
	c.mustWeft("network", "create", "far", "--cidr", "10.40.0.0/24")
	// acme's instances run before the gateway comes: they get its routes
	// when it does.
	c.mustWeft("--tenant", "acme", "deploy", "-f", c.networkModel("acme", "kind: worker", processHello), "--wait", "--timeout", "90s")
	lab := &vpnLab{c: c, n: n, srv: srv, onprem: onprem, hosts: hosts, opNs: "/run/netns/" + onprem.ns, acme: c.tenantInstances("acme")}
	if len(lab.acme) != 2 || lab.acme[0].Node == lab.acme[1].Node {
		t.Fatalf("want acme's two instances on two hosts: %+v", lab.acme)
	}
	if extra.beforeVPN != nil {
		extra.beforeVPN(c)
	}

	out := c.mustWeft("--tenant", "acme", "network", "vpn", "create", "net",
		"--peer-endpoint", onprem.ip+":51900", "--peer-cidr", "192.168.77.0/24", "-o", "json")
	if err := json.Unmarshal([]byte(out), &lab.vpn); err != nil {
		t.Fatalf("vpn create -o json: %v: %s", err, out)
	}
	v := lab.vpn
	lab.conf = parseWGQuick(t, v.PeerConfig)
	conf := lab.conf
	if conf["AllowedIPs"] != "10.30.0.0/24" || conf["ListenPort"] != "51900" || conf["PublicKey"] != v.PublicKey || conf["Endpoint"] != v.Endpoint {
		t.Fatalf("the peer's configuration: %v\n%s", conf, v.PeerConfig)
	}
	lab.gwHost = lab.host(v.Node)
	if lab.gwHost == nil || !strings.HasPrefix(v.Endpoint, lab.gwHost.ip+":") {
		t.Fatalf("the gateway runs on %q at %s", v.Node, v.Endpoint)
	}

	private, err := wireguard.ParseKey(conf["PrivateKey"])
	if err != nil {
		t.Fatal(err)
	}
	gwKey, err := wireguard.ParseKey(conf["PublicKey"])
	if err != nil {
		t.Fatal(err)
	}
	in := func(fn func() error) error { return overlay.InNamespace(lab.opNs, fn) }
	tun, err := wireguard.Open(wireguard.Config{Name: "wg0", TunIn: in, BindIn: in, PrivateKey: private, ListenPort: 51900,
		Peers: []wireguard.Peer{{PublicKey: gwKey, Endpoint: netip.MustParseAddrPort(conf["Endpoint"]),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Keepalive: 25 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tun.Close)
	err = overlay.RouteTunnel(lab.opNs, "wg0", netip.MustParsePrefix("192.168.77.1/24"), []netip.Prefix{
		netip.MustParsePrefix("10.30.0.0/24"), netip.MustParsePrefix("10.40.0.0/24"),
		netip.MustParsePrefix(srv.ip + "/32"), netip.MustParsePrefix(n.subnet + ".254/32"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ins := range lab.acme {
		c.waitFor("on premises reaching acme's "+ins.ID+" at "+ins.PrivateAddress+" through the VPN", 60*time.Second, func() bool {
			body, err := getIn(lab.opNs, ins.PrivateAddress, 8080)
			return err == nil && strings.Contains(body, ins.ID)
		})
	}
	return lab
}

// answerOnPremises serves HTTP at 192.168.77.1:9999 on premises until t
// ends, answering with the caller's address ("you are ADDR:PORT").
func (lab *vpnLab) answerOnPremises(t testing.TB) {
	t.Helper()
	ln, err := listenIn(lab.opNs, "192.168.77.1:9999")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "HTTP/1.0 200 OK\r\n\r\non premises, you are %s\n", conn.RemoteAddr())
			conn.Close()
		}
	}()
}

// askOnPremises is a shell command asking answerOnPremises's server, with
// nc the command that runs netcat.
func askOnPremises(nc string) string {
	return `printf 'GET / HTTP/1.0\r\n\r\n' | ` + nc + ` -w 5 192.168.77.1 9999`
}

// host is the agents' host named name, nil for none.
func (lab *vpnLab) host(name string) *host {
	for _, h := range lab.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// BenchmarkVPNThroughput: one TCP stream from the on-premises namespace
// through the VPN gateway (wireguard-go in the gateway node's agent, then
// the network's bridge, and VXLAN when the instance is on the other host)
// into a process instance on the network that discards it, on the
// gateway's host and on the other (through VXLAN). Compare
// internal/wireguard's BenchmarkWireGuardRaw (two namespaces, no overlay).
func BenchmarkVPNThroughput(b *testing.B) {
	lab := newVPNLab(b, 2, vpnLabExtra{})
	c := lab.c
	dir := filepath.Join(c.dir, "models", "sink")
	if err := os.MkdirAll(filepath.Join(dir, "package"), 0o755); err != nil {
		b.Fatal(err)
	}
	copyExecutable(b, helloBin, filepath.Join(dir, "package", "hello"))
	c.mustWeft("--tenant", "acme", "deploy", "-f", writeFile(b, filepath.Join(dir, "service.yaml"), `name: sink
roles:
  - name: sink
    kind: worker
    runtime: process
    package: ./package
    command: [sh, -c, "while true; do busybox nc -l -p 9000 > /dev/null; done"]
    instances: 2
    size: {cpu: 0.1, memory: 64Mi}
    network: net
`), "--wait", "--timeout", "90s")
	sinks := c.tenantInstancesOf("acme", "sink")
	if len(sinks) != 2 || sinks[0].Node == sinks[1].Node {
		b.Fatalf("want a sink on each host: %+v", sinks)
	}
	for _, sink := range sinks {
		name := "across-hosts"
		if sink.Node == lab.vpn.Node {
			name = "gateway-host"
		}
		b.Run(name, func(b *testing.B) {
			var conn net.Conn
			c.waitFor("the sink listening", 30*time.Second, func() bool {
				err := overlay.InNamespace(lab.opNs, func() (err error) {
					conn, err = net.DialTimeout("tcp4", sink.PrivateAddress+":9000", 5*time.Second)
					return err
				})
				return err == nil
			})
			defer conn.Close()
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := conn.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// parseWGQuick reads the KEY = VALUE lines of a wg-quick configuration.
func parseWGQuick(t testing.TB, conf string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " = "); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}

// getIn asks http://addr:port/ from inside the namespace at ns, giving up
// after five seconds.
func getIn(ns, addr string, port int) (string, error) {
	var conn net.Conn
	err := overlay.InNamespace(ns, func() (err error) {
		conn, err = net.DialTimeout("tcp4", net.JoinHostPort(addr, fmt.Sprint(port)), 5*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	body, err := io.ReadAll(conn)
	return string(body), err
}

// listenIn listens on addr inside the namespace at ns.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := overlay.InNamespace(ns, func() (err error) {
		ln, err = (&net.ListenConfig{}).Listen(context.Background(), "tcp4", addr)
		return err
	})
	return ln, err
}

// vpnNetnsPrefix starts the names of node's VPN gateway namespaces, as
// internal/agent names them.
func (c *cluster) vpnNetnsPrefix(node string) string {
	return strings.Replace(c.gatewayNetnsPrefix(node), "weft-net-", "weft-vpn-", 1)
}

// tenantInstancesOf lists the running instances of tenant's service.
func (c *cluster) tenantInstancesOf(tenant, service string) []api.Instance {
	c.t.Helper()
	var all, out []api.Instance
	if err := json.Unmarshal([]byte(c.mustWeft(c.asTenant(tenant, "instances", service, "-o", "json")...)), &all); err != nil {
		c.t.Fatal(err)
	}
	for _, in := range all {
		if in.Desired == api.DesiredRunning && !in.Draining {
			out = append(out, in)
		}
	}
	return out
}
