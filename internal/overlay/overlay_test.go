package overlay

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/weftcloud/weft/internal/netdns"
	"golang.org/x/sys/unix"
)

var subnet = netip.MustParsePrefix("10.50.0.0/24")
var gateway = netip.MustParseAddr("10.50.0.1")

// twoNetworks is networks A (VNI 100) and B (VNI 200), both 10.50.0.0/24,
// on a host whose peer is other.
func twoNetworks(other netip.Addr, rulesA ...Rule) State {
	return State{Networks: []Network{
		{VNI: 100, Subnet: subnet, Gateway: gateway, Peers: []netip.Addr{other}, Rules: rulesA},
		{VNI: 200, Subnet: subnet, Gateway: gateway, Peers: []netip.Addr{other}},
	}}
}

// TestOverlay runs two hosts, each with networks A and B on the same CIDR,
// and endpoints whose addresses collide across the networks:
//
//	host 1: a1 10.50.0.10 (A), a3 10.50.0.30 (A), b1 10.50.0.20 (B)
//	host 2: a2 10.50.0.20 (A), b2 10.50.0.10 (B)
func TestOverlay(t *testing.T) {
	l := newLab(t)
	hs := l.hosts("h1", "h2")
	h1, h2 := hs[0], hs[1]
	ctx := context.Background()
	for i, h := range hs {
		if err := h.Apply(ctx, twoNetworks(hs[1-i].addr)); err != nil {
			t.Fatal(err)
		}
	}
	a1 := l.endpoint(h1, "a1", 100, "10.50.0.10")
	a3 := l.endpoint(h1, "a3", 100, "10.50.0.30")
	b1 := l.endpoint(h1, "b1", 200, "10.50.0.20")
	a2 := l.endpoint(h2, "a2", 100, "10.50.0.20")
	b2 := l.endpoint(h2, "b2", 200, "10.50.0.10")
	for ns, name := range map[string]string{a1: "a1", a2: "a2", a3: "a3", b1: "b1", b2: "b2"} {
		serveName(t, ns, 7000, name)
		serveName(t, ns, 7001, name)
	}
	names := map[string]string{a1: "a1", a2: "a2", a3: "a3", b1: "b1", b2: "b2"}

	t.Run("reach", func(t *testing.T) {
		tests := []struct {
			from, to, want string // want "" = unreachable
		}{
			{a1, "10.50.0.20", "a2"}, // across hosts, not b1 beside it
			{a2, "10.50.0.10", "a1"},
			{a1, "10.50.0.30", "a3"}, // same bridge
			{b2, "10.50.0.20", "b1"}, // network B across hosts, not a2
			{b1, "10.50.0.10", "b2"},
			{b1, "10.50.0.30", ""}, // a3 is only in A
			{b2, "10.50.0.30", ""},
		}
		for _, tt := range tests {
			if tt.want == "" {
				if got, err := dialName(tt.from, tt.to+":7000"); err == nil {
					t.Errorf("%s reached %s (%s) in another network", names[tt.from], tt.to, got)
				}
				continue
			}
			got, err := dialNameSoon(tt.from, tt.to+":7000")
			if err != nil || got != tt.want {
				t.Errorf("%s -> %s: %q, %v; want %s", names[tt.from], tt.to, got, err, tt.want)
			}
			if err := ping(tt.from, tt.to); err != nil {
				t.Errorf("%s ping %s: %v", names[tt.from], tt.to, err)
			}
		}
		// The gateway answers in each network.
		for _, ns := range []string{a1, b2} {
			if err := ping(ns, gateway.String()); err != nil {
				t.Errorf("%s ping gateway: %v", names[ns], err)
			}
		}
	})

	t.Run("rules", func(t *testing.T) {
		// First match wins: a3 may reach 7001, nobody else in A may.
		rules := []Rule{
			{Action: Allow, Protocol: "tcp", FromPort: 7001, ToPort: 7001, Source: netip.MustParsePrefix("10.50.0.30/32")},
			{Action: Deny, Protocol: "tcp", FromPort: 7001, ToPort: 7001},
		}
		for i, h := range hs {
			if err := h.Apply(ctx, twoNetworks(hs[1-i].addr, rules...)); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			from, to string
			ok       bool
		}{
			{a1, "10.50.0.20:7000", true},
			{a1, "10.50.0.20:7001", false}, // across hosts
			{a2, "10.50.0.30:7001", false}, // same host as the target
			{a1, "10.50.0.30:7001", false}, // same bridge
			{a3, "10.50.0.20:7001", true},  // allowed first
			{b2, "10.50.0.20:7001", true},  // network B has no rules
		}
		for _, tt := range tests {
			_, err := dialName(tt.from, tt.to)
			if (err == nil) != tt.ok {
				t.Errorf("%s -> %s: err %v, want reachable %v", names[tt.from], tt.to, err, tt.ok)
			}
		}
		// Rules decide on a connection's first packet only: with only a1
		// allowed, a1 reaches a3 (whose replies a stateless filter would
		// drop) and a3 does not reach a1.
		onlyA1 := []Rule{
			{Action: Allow, Source: netip.MustParsePrefix("10.50.0.10/32")},
			{Action: Deny},
		}
		if err := h1.Apply(ctx, twoNetworks(h2.addr, onlyA1...)); err != nil {
			t.Fatal(err)
		}
		if got, err := dialNameSoon(a1, "10.50.0.30:7000"); err != nil || got != "a3" {
			t.Errorf("a1 -> a3 with only a1 allowed: %q %v", got, err)
		}
		if got, err := dialName(a3, "10.50.0.10:7000"); err == nil {
			t.Errorf("a3 -> a1 with only a1 allowed: reached %s", got)
		}
		for i, h := range hs {
			if err := h.Apply(ctx, twoNetworks(hs[1-i].addr)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := dialName(a1, "10.50.0.20:7001"); err != nil {
			t.Errorf("rules removed: a1 -> a2:7001: %v", err)
		}
	})

	t.Run("zones", func(t *testing.T) {
		// The same connection 5-tuple in both networks through one host,
		// with a stateful rule in A: a1:P -> 10.50.0.20:7003 in A and
		// b2:P -> 10.50.0.20:7003 in B, both open at once, both working.
		// (Each network has its own conntrack zone. Without the zones this
		// test still passes: conntrack's loose TCP pickup rebuilds the
		// shared entry. The zones keep the two apart by construction.)
		for _, ns := range []string{a2, b1} {
			serveEcho(t, ns, 7003)
		}
		state := State{Networks: []Network{
			{VNI: 100, Subnet: subnet, Gateway: gateway, Peers: []netip.Addr{h2.addr},
				Rules: []Rule{{Action: Deny, Source: netip.MustParsePrefix("10.50.0.20/32")}}},
			{VNI: 200, Subnet: subnet, Gateway: gateway, Peers: []netip.Addr{h2.addr}},
		}}
		if err := h1.Apply(ctx, state); err != nil {
			t.Fatal(err)
		}
		defer h1.Apply(ctx, twoNetworks(h2.addr))
		port := 40000 + rand.IntN(20000)
		connA, err := dialFrom(a1, port, "10.50.0.20:7003")
		if err != nil {
			t.Fatalf("a1 -> a2:7003: %v", err)
		}
		defer connA.Close()
		if err := echo(connA, "a"); err != nil {
			t.Fatalf("a1 <-> a2 before: %v", err)
		}
		connB, err := dialFrom(b2, port, "10.50.0.20:7003")
		if err != nil {
			t.Fatalf("b2:%d -> b1:7003 with a1:%d -> a2:7003 open in A: %v", port, port, err)
		}
		defer connB.Close()
		if err := echo(connB, "b"); err != nil {
			t.Errorf("b2 <-> b1: %v", err)
		}
		if err := echo(connA, "a"); err != nil {
			t.Errorf("a1 <-> a2 after the same 5-tuple connected in B: %v", err)
		}
	})

	t.Run("ipv6", func(t *testing.T) {
		// Link-local IPv6 comes up on every endpoint by itself; it must not
		// carry traffic past the IPv4 rules (nor at all).
		linkLocal(t, l, a1)
		to := linkLocal(t, l, a3)
		var ln net.Listener
		if err := inNetns(a3, func() (err error) {
			ln, err = net.Listen("tcp6", "[::]:7002")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		err := inNetns(a1, func() error {
			c, err := net.DialTimeout("tcp6", "["+to.String()+"%eth0]:7002", time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("a1 reached a3 at %v over IPv6", to)
		}
	})

	t.Run("idempotent", func(t *testing.T) {
		before := l.links(h1.ns)
		if err := h1.Apply(ctx, twoNetworks(h2.addr)); err != nil {
			t.Fatal(err)
		}
		// An agent that restarts: a new Host reads everything back.
		again := l.open(h1)
		if err := again.Apply(ctx, twoNetworks(h2.addr)); err != nil {
			t.Fatal(err)
		}
		if _, err := again.Attach(ctx, Endpoint{ID: "a1", Network: 100, Netns: a1,
			Address: netip.MustParsePrefix("10.50.0.10/24"), Gateway: gateway}); err != nil {
			t.Fatalf("attach again: %v", err)
		}
		if diff := cmp.Diff(before, l.links(h1.ns)); diff != "" {
			t.Errorf("devices changed by applying the same state (-before +after):\n%s", diff)
		}
		ports, err := again.Ports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ports {
			got = append(got, p.ID)
		}
		slices.Sort(got)
		if want := []string{"a1", "a3", "b1"}; !slices.Equal(got, want) {
			t.Errorf("Ports = %v, want %v", got, want)
		}
		if got, err := dialNameSoon(a1, "10.50.0.20:7000"); err != nil || got != "a2" {
			t.Errorf("after restart a1 -> a2: %q %v", got, err)
		}
	})

	t.Run("dns", func(t *testing.T) {
		// One server per network, in its gateway namespace: the same
		// address answers differently in A and B.
		tables := map[uint32]netdns.Records{
			100: {Instances: []netdns.Instance{
				{Name: "a2", Role: "web", Service: "shop", Addr: netip.MustParseAddr("10.50.0.20"), Healthy: true},
				{Name: "a3", Role: "web", Service: "shop", Addr: netip.MustParseAddr("10.50.0.30"), Healthy: false}}},
			200: {VMs: []netdns.VM{{Name: "b1", Addr: netip.MustParseAddr("10.50.0.20")}}},
		}
		for vni, recs := range tables {
			srv := netdns.New(nil)
			srv.Set(recs)
			startDNS(t, h1.Host, vni, srv)
		}
		tests := []struct {
			from, name string
			rcode      int
			want       []string
		}{
			{a1, "a2.web.shop.internal", dns.RcodeSuccess, []string{"10.50.0.20"}},
			{a1, "web.shop.internal", dns.RcodeSuccess, []string{"10.50.0.20"}},
			{a1, "a3.web.shop.internal", dns.RcodeSuccess, []string{"10.50.0.30"}},
			{a1, "b1.vm.internal", dns.RcodeNameError, nil}, // B's name, asked in A
			{b1, "b1.vm.internal", dns.RcodeSuccess, []string{"10.50.0.20"}},
			{b1, "web.shop.internal", dns.RcodeNameError, nil},
		}
		for _, tt := range tests {
			rcode, got, err := queryFrom(tt.from, tt.name)
			if err != nil || rcode != tt.rcode || !slices.Equal(got, tt.want) {
				t.Errorf("%s asks %s: %s %v %v; want %s %v", names[tt.from], tt.name,
					dns.RcodeToString[rcode], got, err, dns.RcodeToString[tt.rcode], tt.want)
			}
		}
		// UDP rules and sources: a1 may not ask, a3 may; ICMP denied
		// while TCP passes.
		rules := []Rule{
			{Action: Deny, Protocol: "udp", FromPort: 53, ToPort: 53, Source: netip.MustParsePrefix("10.50.0.10/32")},
			{Action: Deny, Protocol: "icmp"},
		}
		if err := h1.Apply(ctx, twoNetworks(h2.addr, rules...)); err != nil {
			t.Fatal(err)
		}
		defer h1.Apply(ctx, twoNetworks(h2.addr))
		if _, _, err := queryFrom(a1, "web.shop.internal"); err == nil {
			t.Error("a1 asked the DNS server past a rule denying it udp/53")
		}
		if _, got, err := queryFrom(a3, "web.shop.internal"); err != nil || !slices.Equal(got, []string{"10.50.0.20"}) {
			t.Errorf("a3 asks web.shop.internal with a1 denied: %v %v", got, err)
		}
		if err := ping(a3, "10.50.0.10"); err == nil {
			t.Error("a3 pinged a1 past a rule denying icmp")
		}
		if _, err := dialName(a3, "10.50.0.10:7000"); err != nil {
			t.Errorf("a3 -> a1 tcp with icmp denied: %v", err)
		}
	})

	t.Run("tap", func(t *testing.T) {
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			t.Skip("no /dev/net/tun")
		}
		p, mac, err := h1.AttachTap(ctx, Tap{ID: "vm1", Network: 100})
		if err != nil {
			t.Fatal(err)
		}
		nl := l.handle(h1.ns)
		defer nl.Close()
		link, err := nl.LinkByName(p.Device)
		if err != nil {
			t.Fatal(err)
		}
		br, _ := nl.LinkByName(bridgeName(100))
		if link.Type() != "tuntap" || link.Attrs().MasterIndex != br.Attrs().Index {
			t.Errorf("tap %s: type %s master %d, want tuntap on %d", p.Device, link.Type(), link.Attrs().MasterIndex, br.Attrs().Index)
		}
		// Be the VM: open the tap as QEMU does and ask who has a1's address.
		reply, err := arpThroughTap(h1.ns, p.Device, mac, netip.MustParseAddr("10.50.0.99"), netip.MustParseAddr("10.50.0.10"))
		if err != nil {
			t.Errorf("ARP for a1 through the tap: %v", err)
		} else if reply.String() != endpointMAC("a1").String() {
			t.Errorf("ARP for a1 through the tap: answered by %v, want a1's %v", reply, endpointMAC("a1"))
		}
		if _, mac2, err := h1.AttachTap(ctx, Tap{ID: "vm1", Network: 100}); err != nil || mac2.String() != mac.String() {
			t.Errorf("attach tap again: %v %v (first %v)", mac2, err, mac)
		}
		if err := h1.Detach(ctx, 100, "vm1"); err != nil {
			t.Fatal(err)
		}
		if _, err := nl.LinkByName(p.Device); !isNotFound(err) {
			t.Errorf("tap after Detach: %v", err)
		}
	})

	t.Run("stale", func(t *testing.T) {
		// Host 1 keeps only A, with no peers: B's bridge, VXLAN, gateway
		// namespace and endpoint go, A's FDB empties.
		if err := h1.Apply(ctx, State{Networks: []Network{{VNI: 100, Subnet: subnet, Gateway: gateway}}}); err != nil {
			t.Fatal(err)
		}
		var left []string
		for name := range maps.Keys(l.links(h1.ns)) {
			if strings.HasPrefix(name, netPrefix(200)) {
				left = append(left, name)
			}
		}
		if len(left) > 0 {
			t.Errorf("network B's devices left on host 1: %v", left)
		}
		if _, err := os.Stat(filepath.Join(netnsDir, h1.netnsName(200))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("network B's gateway namespace: %v", err)
		}
		if _, ok := l.links(b1)["eth0"]; ok {
			t.Error("b1 still has eth0 after its network went")
		}
		nl := l.handle(h1.ns)
		defer nl.Close()
		vx, err := nl.LinkByName(vxlanName(100))
		if err != nil {
			t.Fatal(err)
		}
		fdb, err := nl.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fdb {
			if e.IP != nil {
				t.Errorf("FDB entry %v behind %v left after the peer went", e.HardwareAddr, e.IP)
			}
		}
		// a1 and a3 are untouched.
		if got, err := dialNameSoon(a1, "10.50.0.30:7000"); err != nil || got != "a3" {
			t.Errorf("a1 -> a3 after removing B: %q %v", got, err)
		}
		// Peer back: across hosts again.
		if err := h1.Apply(ctx, State{Networks: []Network{{VNI: 100, Subnet: subnet, Gateway: gateway, Peers: []netip.Addr{h2.addr}}}}); err != nil {
			t.Fatal(err)
		}
		if got, err := dialNameSoon(a1, "10.50.0.20:7000"); err != nil || got != "a2" {
			t.Errorf("a1 -> a2 with the peer back: %q %v", got, err)
		}
	})

	t.Run("new namespace", func(t *testing.T) {
		// a3 restarts in a new namespace while the old one lives on:
		// attaching it again moves its endpoint, with a new address too.
		a3b := l.netns("a3b")
		serveName(t, a3b, 7000, "a3b")
		if _, err := h1.Attach(ctx, Endpoint{ID: "a3", Network: 100, Netns: a3b,
			Address: netip.MustParsePrefix("10.50.0.31/24"), Gateway: gateway}); err != nil {
			t.Fatal(err)
		}
		if _, ok := l.links(a3)["eth0"]; ok {
			t.Error("the old namespace kept its eth0")
		}
		if got, err := dialNameSoon(a1, "10.50.0.31:7000"); err != nil || got != "a3b" {
			t.Errorf("a1 -> a3 in its new namespace: %q %v", got, err)
		}
		// The same call again keeps the pair.
		before := l.links(h1.ns)
		if _, err := h1.Attach(ctx, Endpoint{ID: "a3", Network: 100, Netns: a3b,
			Address: netip.MustParsePrefix("10.50.0.31/24"), Gateway: gateway}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, l.links(h1.ns)); diff != "" {
			t.Errorf("attaching the same endpoint again changed devices:\n%s", diff)
		}
	})
}

// startDNS serves srv in network vni's gateway namespace on port 53.
func startDNS(t *testing.T, h *Host, vni uint32, srv *netdns.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	err := h.InNetwork(vni, func() error {
		udp, err := listenUDP(gateway.String() + ":53")
		if err != nil {
			return err
		}
		go func() { done <- srv.Serve(ctx, udp, nil) }()
		return nil
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-done })
}

// queryFrom asks the gateway for name's A records from inside ns.
func queryFrom(ns, name string) (int, []string, error) {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	var r *dns.Msg
	err := inNetns(ns, func() error {
		conn, err := c.Dial(gateway.String() + ":53")
		if err != nil {
			return err
		}
		r, _, err = c.ExchangeWithConn(m, conn)
		conn.Close()
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	var got []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			got = append(got, a.A.String())
		}
	}
	slices.Sort(got)
	return r.Rcode, got, nil
}

func TestValidate(t *testing.T) {
	self := netip.MustParseAddr("192.168.0.1")
	ok := Network{VNI: 5, Subnet: subnet, Gateway: gateway}
	tests := []struct {
		name string
		edit func(n *Network)
		want string
	}{
		{"vni 0", func(n *Network) { n.VNI = 0 }, "VNI 0"},
		{"vni too big", func(n *Network) { n.VNI = 1 << 24 }, "VNI 16777216"},
		{"ipv6 subnet", func(n *Network) { n.Subnet = netip.MustParsePrefix("fd00::/64") }, "subnet fd00::/64"},
		{"gateway outside", func(n *Network) { n.Gateway = netip.MustParseAddr("10.9.0.1") }, "gateway 10.9.0.1 is not in"},
		{"peer is self", func(n *Network) { n.Peers = []netip.Addr{self} }, "peer 192.168.0.1"},
		{"bad action", func(n *Network) { n.Rules = []Rule{{Action: "maybe"}} }, `rule action "maybe"`},
		{"ports without protocol", func(n *Network) { n.Rules = []Rule{{Action: Deny, FromPort: 80, ToPort: 80}} }, "needs protocol tcp or udp"},
		{"backwards range", func(n *Network) { n.Rules = []Rule{{Action: Deny, Protocol: "tcp", FromPort: 90, ToPort: 80}} }, "port range 90-80"},
		{"bad protocol", func(n *Network) { n.Rules = []Rule{{Action: Deny, Protocol: "sctp"}} }, `protocol "sctp"`},
	}
	if err := ok.validate(self); err != nil {
		t.Fatalf("valid network: %v", err)
	}
	for _, tt := range tests {
		n := ok
		tt.edit(&n)
		err := n.validate(self)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", tt.name, err, tt.want)
		}
	}
}

// linkLocal waits for the IPv6 link-local address of eth0 in ns to finish
// duplicate address detection and returns it.
func linkLocal(t *testing.T, l *lab, ns string) netip.Addr {
	t.Helper()
	nl := l.handle(ns)
	defer nl.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		eth, err := nl.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := nl.AddrList(eth, unix.AF_INET6)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			ip, _ := netip.AddrFromSlice(a.IP)
			if ip.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return ip
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no link-local address in %s", ns)
	return netip.Addr{}
}

// TestNoRoutingBetweenNetworks gives the host what it would need to route
// between two networks (an address on each bridge, forwarding on, routes
// in the endpoints) and checks that the table still keeps them apart.
func TestNoRoutingBetweenNetworks(t *testing.T) {
	l := newLab(t)
	hs := l.hosts("h1", "h2")
	h1 := hs[0]
	ctx := context.Background()
	state := State{Networks: []Network{
		{VNI: 100, Subnet: subnet, Gateway: gateway},
		{VNI: 300, Subnet: netip.MustParsePrefix("10.60.0.0/24"), Gateway: netip.MustParseAddr("10.60.0.1")},
	}}
	if err := h1.Apply(ctx, state); err != nil {
		t.Fatal(err)
	}
	a1 := l.endpoint(h1, "a1", 100, "10.50.0.10")
	c1 := l.endpoint(h1, "c1", 300, "10.60.0.10")
	serveName(t, c1, 7000, "c1")

	nl := l.handle(h1.ns)
	defer nl.Close()
	for vni, addr := range map[uint32]string{100: "10.50.0.254/24", 300: "10.60.0.254/24"} {
		br, err := nl.LinkByName(bridgeName(vni))
		if err != nil {
			t.Fatal(err)
		}
		if err := setOnlyAddress(nl, br, netip.MustParsePrefix(addr)); err != nil {
			t.Fatal(err)
		}
	}
	if err := inNetns(h1.ns, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0)
	}); err != nil {
		t.Fatal(err)
	}
	for ns, route := range map[string][2]string{a1: {"10.60.0.0/24", "10.50.0.254"}, c1: {"10.50.0.0/24", "10.60.0.254"}} {
		h := l.handle(ns)
		eth, err := h.LinkByName("eth0")
		if err == nil {
			dst := netip.MustParsePrefix(route[0])
			err = h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index,
				Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)},
				Gw:  net.ParseIP(route[1])})
		}
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, err := dialName(a1, "10.60.0.10:7000"); err == nil {
		t.Errorf("a1 reached %s in another network through the host", got)
	}
	if err := ping(a1, "10.60.0.10"); err == nil {
		t.Error("a1 pinged c1 in another network through the host")
	}
}
