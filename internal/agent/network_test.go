package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/netdns"
	"github.com/weftcloud/weft/internal/overlay"
)

// TestNetworksDesired: an assignments answer's networks become the
// overlay's state (the whole CIDR, the first subnet's gateway, every other
// host with members as a peer, once) and the DNS records (instances by
// health, persistent VMs by name); a network that does not parse is left
// out, not the others.
func TestNetworksDesired(t *testing.T) {
	p := newNetPlane(slog.New(slog.DiscardHandler), "n1", "192.168.0.1", "/var/lib/weft")
	member := func(addr, id, node, host, health string) api.NetworkMember {
		return api.NetworkMember{Address: addr, Instance: id, Service: "shop", Role: "web", Health: health, Node: node, Host: host}
	}
	nets := []api.NodeNetwork{
		{Tenant: "acme", Network: "net", VNI: 7, CIDR: "10.20.0.0/16",
			Subnets: []api.Subnet{{Name: "front", CIDR: "10.20.1.0/24"}, {Name: "back", CIDR: "10.20.2.0/24"}},
			Members: []api.NetworkMember{
				member("10.20.1.2", "shop-web-0-a", "n1", "192.168.0.1", api.HealthHealthy),
				member("10.20.1.3", "shop-web-1-b", "n2", "192.168.0.2", api.HealthUnhealthy),
				member("10.20.2.2", "shop-web-2-c", "n3", "192.168.0.3", api.HealthHealthy),
				member("10.20.2.3", "shop-web-3-d", "n2", "192.168.0.2", api.HealthHealthy),
				{Address: "10.20.2.4", Instance: "db-vm-0-e", Service: "db", Role: api.VMRole, VM: true, Node: "n1", Host: "192.168.0.1"},
			},
			// The VPN gateway's node is a peer too, members or not.
			VPN: &api.NetworkVPN{Node: "n4", Host: "192.168.0.4", Address: "10.20.1.4", PeerCIDRs: []string{"192.168.50.0/24", "172.16.0.0/12"}}},
		{Tenant: "acme", Network: "broken", VNI: 8, CIDR: "not a cidr", Subnets: []api.Subnet{{Name: "default", CIDR: "10.0.0.0/24"}}},
	}
	st, records, gateways, routes := p.desired(nets)
	want := overlay.State{Networks: []overlay.Network{{VNI: 7, Subnet: netip.MustParsePrefix("10.20.0.0/16"),
		Gateway: netip.MustParseAddr("10.20.1.1"), Peers: []netip.Addr{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.0.3"), netip.MustParseAddr("192.168.0.4")}}}}
	if diff := cmp.Diff(want, st, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("overlay state (-want +got):\n%s", diff)
	}
	inst := func(name, addr string, healthy bool) netdns.Instance {
		return netdns.Instance{Name: name, Role: "web", Service: "shop", Addr: netip.MustParseAddr(addr), Healthy: healthy}
	}
	wantRec := map[uint32]netdns.Records{7: {
		Instances: []netdns.Instance{inst("shop-web-0-a", "10.20.1.2", true), inst("shop-web-1-b", "10.20.1.3", false),
			inst("shop-web-2-c", "10.20.2.2", true), inst("shop-web-3-d", "10.20.2.3", true)},
		VMs: []netdns.VM{{Name: "db", Addr: netip.MustParseAddr("10.20.2.4")}},
	}}
	if diff := cmp.Diff(wantRec, records, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("DNS records (-want +got):\n%s", diff)
	}
	if gw := gateways[7]; gw != netip.MustParseAddr("10.20.1.1") || len(gateways) != 1 {
		t.Errorf("gateways: %v", gateways)
	}
	wantRoutes := map[uint32]vpnRoutes{7: {via: netip.MustParseAddr("10.20.1.4"),
		to: []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24"), netip.MustParsePrefix("172.16.0.0/12")}}}
	if diff := cmp.Diff(wantRoutes, routes, cmp.AllowUnexported(vpnRoutes{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("VPN routes (-want +got):\n%s", diff)
	}
}

// TestInstanceNeverStartsWithoutItsNetwork: when the node cannot carry
// networks, an instance on one gets the reason, and the node carries
// nothing; the reason names what is wrong (here the host address, or not
// being root).
func TestInstanceNeverStartsWithoutItsNetwork(t *testing.T) {
	p := newNetPlane(slog.New(slog.DiscardHandler), "n1", "node1.example", t.TempDir())
	p.apply(context.Background(), []api.NodeNetwork{{Network: "net", VNI: 3, CIDR: "10.0.0.0/24",
		Subnets: []api.Subnet{{Name: "default", CIDR: "10.0.0.0/24"}}}})
	_, err := p.ready(&api.NetworkAttachment{Network: "net", VNI: 3, CIDR: "10.0.0.0/24", Address: "10.0.0.2"})
	want := `network net: the node's host address "node1.example" is not an IPv4 address`
	if os.Geteuid() != 0 {
		want = "network net: the node agent does not run as root"
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ready: %v, want %q", err, want)
	}
	if p.ov != nil {
		t.Error("the overlay opened")
	}
}

// TestAgentNeverStartsAnInstanceWithoutItsNetwork: an instance assigned
// on a network the node does not carry (here none: the answer lists no
// networks) fails to start, saying why, instead of running without the
// address it was given.
func TestAgentNeverStartsAnInstanceWithoutItsNetwork(t *testing.T) {
	f, srv := newFakeController(t, helloPackage(t))
	a, cancel, done := startAgent(t, srv.URL, t.TempDir())
	defer func() {
		a.StopAll(context.Background())
		cancel()
		<-done
	}()
	asg := assignment("hello-web-0-net")
	asg.Network = &api.NetworkAttachment{Tenant: api.DefaultTenant, Network: "net", VNI: 1, CIDR: "10.0.0.0/24",
		Subnet: "default", SubnetCIDR: "10.0.0.0/24", Gateway: "10.0.0.1", Address: "10.0.0.2"}
	f.assign(asg)
	want := "failed to start: network net: the node has not set up its virtual networks yet"
	eventually(t, "the instance failing with the reason", func() bool {
		return strings.Contains(f.get(asg.Instance.ID).LastError, want)
	})
	if st := f.get(asg.Instance.ID); st.State == api.StateRunning {
		t.Errorf("the instance runs: %+v", st)
	}
}

// TestNetworkDNSServesInItsGatewayNamespace: a network's DNS server
// answers in the network's gateway namespace; when that namespace goes
// (deleted by hand, or by another agent using its name) while the node
// still carries the network, the next answer makes it again and the DNS
// server answers there, with the answer's names (it used to stay
// listening in the namespace that went, and the network had no names).
func TestNetworkDNSServesInItsGatewayNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the test needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the test needs ip (apt-get install iproute2)")
	}
	id := fmt.Sprintf("%04x", rand.IntN(1<<16))
	hostNs := "wadns" + id
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("netns", "add", hostNs)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", hostNs).Run() })
	ip("-n", hostNs, "link", "set", "lo", "up")
	ip("-n", hostNs, "addr", "add", "192.168.79.1/32", "dev", "lo")

	node := "dnstest-" + id
	p := newNetPlane(slog.New(slog.DiscardHandler), node, "192.168.79.1", t.TempDir())
	p.hostNetns = "/run/netns/" + hostNs
	t.Cleanup(func() {
		for _, s := range p.nets {
			s.stop()
			<-s.done
		}
		names, _ := overlay.Namespaces(netnsPrefix(p.agentID))
		for _, n := range names {
			overlay.DeleteNamespace(n)
		}
	})
	const vni = 5
	member := func(instance, addr string) api.NetworkMember {
		return api.NetworkMember{Address: addr, Instance: instance, Service: "shop", Role: "web", Health: api.HealthHealthy,
			Node: node, Host: "192.168.79.1"}
	}
	nets := func(members ...api.NetworkMember) []api.NodeNetwork {
		return []api.NodeNetwork{{Network: "net", VNI: vni, CIDR: "10.20.0.0/24",
			Subnets: []api.Subnet{{Name: "default", CIDR: "10.20.0.0/24"}}, Members: members}}
	}
	// resolve asks the network's DNS server for name from inside the
	// gateway namespace as it is now, where the network's endpoints reach
	// it.
	resolve := func(name string) (string, error) {
		var got string
		err := p.ov.InNetwork(vni, func() error {
			c := dns.Client{Timeout: 2 * time.Second}
			r, _, err := c.Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), "10.20.0.1:53")
			if err != nil {
				return err
			}
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					got = a.A.String()
				}
			}
			if got == "" {
				return fmt.Errorf("%s: %s", name, dns.RcodeToString[r.Rcode])
			}
			return nil
		})
		return got, err
	}

	ctx := context.Background()
	a := member("shop-web-0-a", "10.20.0.2")
	p.apply(ctx, nets(a))
	if got, err := resolve("shop-web-0-a.web.shop.internal."); err != nil || got != a.Address {
		t.Fatalf("before: %q, %v; want %s", got, err, a.Address)
	}

	if err := overlay.DeleteNamespace(fmt.Sprintf("%s%06x", netnsPrefix(p.agentID), vni)); err != nil {
		t.Fatal(err)
	}
	// The next answer, with a member that came meanwhile.
	b := member("shop-web-1-b", "10.20.0.3")
	p.apply(ctx, nets(a, b))
	for _, m := range []api.NetworkMember{a, b} {
		if got, err := resolve(m.Instance + ".web.shop.internal."); err != nil || got != m.Address {
			t.Errorf("%s after the gateway namespace was made again: %q, %v; want %s", m.Instance, got, err, m.Address)
		}
	}
}

// TestAgentsOfTwoClustersNameTheirNamespacesApart: agents of the same
// node name with other data directories (two clusters on one machine)
// name their gateway namespaces apart, neither prefix starting the other;
// an agent restarted on its data directory names them as before.
func TestAgentsOfTwoClustersNameTheirNamespacesApart(t *testing.T) {
	a, b := agentID("h1", "/tmp/one/h1"), agentID("h1", "/tmp/two/h1")
	for _, prefix := range []func(string) string{netnsPrefix, vpnNetnsPrefix} {
		pa, pb := prefix(a), prefix(b)
		if strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa) {
			t.Errorf("prefixes %q and %q: one starts the other", pa, pb)
		}
	}
	if again := agentID("h1", "/tmp/one/h1"); again != a {
		t.Errorf("the same agent's ID changed: %s, then %s", a, again)
	}
}
