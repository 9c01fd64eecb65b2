package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/netdns"
	"github.com/weftcloud/weft/internal/overlay"
)

// netPlane is the node's share of the virtual networks' data plane: the
// overlay (package overlay), opened once the node first has an instance on
// a network, programmed from every assignments answer, and one DNS server
// (package netdns) per network in the network's gateway namespace.
//
// Container and process instances are put on their network: their
// driver gives each a namespace of its own, which gets a second interface
// (endpointIface) on the network. A vm instance gets a tap on the
// network's bridge for a second virtio-net device (vmnet.go).
type netPlane struct {
	log  *slog.Logger
	self string // the node's name: its own members are not peers
	host string // the node's host address: the overlay's underlay
	// hostNetns is the path of the node's network namespace, "" for the
	// agent's own (tests give the overlay another).
	hostNetns string
	// agentID names the agent's namespaces under /run/netns (agentID).
	agentID string

	mu sync.Mutex
	ov *overlay.Host
	// why is the reason the overlay cannot be opened, when it cannot.
	why    error
	logged string // the last why logged
	nets   map[uint32]*netServed
	// failed says why each network the node should carry but does not
	// serve is missing (its programming or its DNS server failed).
	failed map[uint32]error
	// applied is the state last programmed, at appliedAt: an answer that
	// changes nothing in it is not programmed again before reapplyAfter.
	applied   overlay.State
	appliedAt time.Time
	// routes are each network's routes to the peer's networks behind its
	// VPN gateway, which every endpoint on it gets; attached are the
	// endpoints put on networks, to give them new routes.
	routes   map[uint32]vpnRoutes
	attached map[string]overlay.Endpoint
}

// vpnRoutes are the routes a network's endpoints take to its VPN gateway:
// a container's or a process's namespace gets them from the agent
// (reroute), a VM's guest from its guest agent (routeVMs).
type vpnRoutes struct {
	to  []netip.Prefix
	via netip.Addr
}

func (r vpnRoutes) equal(o vpnRoutes) bool { return r.via == o.via && slices.Equal(r.to, o.to) }

// routesOf are network vni's VPN routes, none when it has no gateway.
func (p *netPlane) routesOf(vni int) vpnRoutes {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.routes[uint32(vni)]
}

// reapplyAfter bounds how long the kernel objects may drift from the
// desired state (someone deleted a bridge) while the state stays the same;
// answers come on every change in the cluster, so most would otherwise
// rewrite the same objects and rules.
const reapplyAfter = time.Minute

// netServed is one network the node carries.
type netServed struct {
	dnsAddr netip.Addr // the gateway namespace's address
	dns     *netdns.Server
	// netns identifies the gateway namespace the DNS server listens in:
	// one made again under the same name (deleted by hand, or by another
	// agent using the name) has none until the server is started anew.
	netns uint64
	stop  context.CancelFunc
	done  chan struct{}
}

// endpointIface is the name of an instance's interface on its virtual
// network. Its eth0 stays the link to the host its driver made
// (instancenet: the default route, through which the shim relays the
// role's published ports and the metadata service), so the network is
// reached by its connected route alone.
const endpointIface = "eth1"

// The environment of an instance on a network: its DNS server's address
// (also in the /etc/resolv.conf it sees, see resolvConf) and its own.
const (
	envNetworkDNS     = "WEFT_NETWORK_DNS"
	envPrivateAddress = "WEFT_PRIVATE_ADDRESS"
)

// newNetPlane returns the network plane of node self on host, whose
// agent keeps its data in dataDir (absolute).
func newNetPlane(log *slog.Logger, self, host, dataDir string) *netPlane {
	return &netPlane{log: log, self: self, host: host, agentID: agentID(self, dataDir), nets: map[uint32]*netServed{}, failed: map[uint32]error{},
		routes: map[uint32]vpnRoutes{}, attached: map[string]overlay.Endpoint{}}
}

// open opens the overlay the first time it is needed; p.mu is held.
func (p *netPlane) open() error {
	if p.ov != nil {
		return nil
	}
	if os.Geteuid() != 0 {
		p.why = errors.New("the node agent does not run as root, and only root can program the virtual networks' overlay")
		return p.why
	}
	underlay, err := netip.ParseAddr(p.host)
	if err != nil || !underlay.Is4() {
		p.why = fmt.Errorf("the node's host address %q is not an IPv4 address, which the overlay between hosts needs (--host)", p.host)
		return p.why
	}
	ov, err := overlay.Open(overlay.Config{NetNS: p.hostNetns, Underlay: underlay, NetnsPrefix: netnsPrefix(p.agentID), Logger: p.log})
	if err != nil {
		p.why = err
		return err
	}
	p.ov, p.why = ov, nil
	return nil
}

// agentID names an agent's namespaces under /run/netns, which every agent
// on a machine shares: several run on one in tests, each in a network
// namespace of its own, and agents of different clusters on one machine
// (two test runs, weft dev beside a node) have the same node names and
// networks with the same VNIs. Named after the node alone, their gateway
// namespaces were one another's: one agent's DNS server answered the
// other's queries with its own names, and each removed the other's as
// not its own. The overlay removes every namespace with its prefix that
// it does not carry, so no agent's prefix may start another's: a hash of
// the node's name and the agent's data directory, of fixed length, makes
// them unambiguous, and the same after a restart.
func agentID(node, dataDir string) string {
	h := fnv.New32a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(dataDir))
	return fmt.Sprintf("%08x", h.Sum32())
}

// netnsPrefix starts the names of an agent's gateway namespaces.
func netnsPrefix(agentID string) string { return "weft-net-" + agentID + "-" }

// dnsAddr is the address of network n's gateway namespace on every host,
// where its DNS server answers: the gateway of its first subnet (every
// subnet's gateway is kept from members, so any would do; the first is
// the one every node picks alike).
func dnsAddr(n api.NodeNetwork) (netip.Addr, error) {
	if len(n.Subnets) == 0 {
		return netip.Addr{}, fmt.Errorf("network %s has no subnet", n.Network)
	}
	sub, err := netip.ParsePrefix(n.Subnets[0].CIDR)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("network %s subnet %s: %w", n.Network, n.Subnets[0].Name, err)
	}
	return api.Gateway(sub), nil
}

// desired turns the networks of an assignments answer into the overlay's
// state: each network's CIDR, gateway and peers (the other hosts with
// members on it). A network that does not parse is left out and logged.
func (p *netPlane) desired(nets []api.NodeNetwork) (overlay.State, map[uint32]netdns.Records, map[uint32]netip.Addr, map[uint32]vpnRoutes) {
	var st overlay.State
	routes := map[uint32]vpnRoutes{}
	records := map[uint32]netdns.Records{}
	gateways := map[uint32]netip.Addr{}
	for _, n := range nets {
		cidr, err := netip.ParsePrefix(n.CIDR)
		gw, gerr := dnsAddr(n)
		rules, rerr := overlayRules(n.Rules)
		if err != nil || gerr != nil || rerr != nil || n.VNI <= 0 {
			p.log.Error("virtual network left out: it does not parse", "network", n.Network, "vni", n.VNI, "err", errors.Join(err, gerr, rerr))
			continue
		}
		vni := uint32(n.VNI)
		on := overlay.Network{VNI: vni, Subnet: cidr, Gateway: gw, Rules: rules}
		var rec netdns.Records
		for _, m := range n.Members {
			addr, err := netip.ParseAddr(m.Address)
			if err != nil {
				continue
			}
			if m.VM {
				rec.VMs = append(rec.VMs, netdns.VM{Name: m.Service, Addr: addr})
			} else {
				rec.Instances = append(rec.Instances, netdns.Instance{Name: m.Instance, Role: m.Role, Service: m.Service,
					Addr: addr, Healthy: m.Health == api.HealthHealthy})
			}
			peer, err := netip.ParseAddr(m.Host)
			if m.Node == p.self || m.Host == p.host || err != nil || !peer.Is4() || slices.Contains(on.Peers, peer) {
				continue
			}
			on.Peers = append(on.Peers, peer)
		}
		if g := n.VPN; g != nil {
			// The gateway's host floods and is flooded to like a member's.
			if peer, err := netip.ParseAddr(g.Host); err == nil && peer.Is4() && g.Node != p.self && g.Host != p.host && !slices.Contains(on.Peers, peer) {
				on.Peers = append(on.Peers, peer)
			}
			if r, ok := p.vpnRoutes(g); ok {
				routes[vni] = r
			}
		}
		slices.SortFunc(on.Peers, func(a, b netip.Addr) int { return a.Compare(b) })
		st.Networks = append(st.Networks, on)
		records[vni], gateways[vni] = rec, gw
	}
	return st, records, gateways, routes
}

// vpnRoutes parses a network's VPN routes; a gateway that does not parse
// gives none, logged.
func (p *netPlane) vpnRoutes(g *api.NetworkVPN) (vpnRoutes, bool) {
	via, err := netip.ParseAddr(g.Address)
	if err != nil {
		p.log.Error("VPN routes left out: the gateway's address does not parse", "address", g.Address)
		return vpnRoutes{}, false
	}
	r := vpnRoutes{via: via}
	for _, c := range g.PeerCIDRs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			p.log.Error("VPN route left out: it does not parse", "cidr", c)
			continue
		}
		r.to = append(r.to, pfx)
	}
	return r, true
}

// apply makes the node carry exactly nets (an assignments answer's), and
// serve each one's names. It opens the overlay only when there is a
// network to carry. A failure is logged: the next answer tries again, and
// meanwhile instances that need a missing network fail to start.
func (p *netPlane) apply(ctx context.Context, nets []api.NodeNetwork) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ov == nil && len(nets) == 0 {
		return
	}
	if err := p.open(); err != nil {
		if err.Error() != p.logged {
			p.log.Error("cannot carry virtual networks", "err", err)
			p.logged = err.Error() // once, not on every answer
		}
		return
	}
	st, records, gateways, routes := p.desired(nets)
	for vni, s := range p.nets {
		gw, ok := gateways[vni]
		moved := ok && gw == s.dnsAddr && p.netnsID(vni) != s.netns
		if !ok || gw != s.dnsAddr || moved {
			s.stop()
			<-s.done
			delete(p.nets, vni)
		}
		if moved {
			// Its gateway namespace went or was made again: program
			// the network anew, then serve in the namespace it has now.
			p.log.Warn("virtual network DNS: its gateway namespace changed under it; serving again", "vni", vni)
			p.applied = overlay.State{}
		}
	}
	clear(p.failed)
	if !reflect.DeepEqual(st, p.applied) || time.Since(p.appliedAt) >= reapplyAfter {
		if err := p.ov.Apply(ctx, st); err != nil {
			p.log.Error("programming the virtual networks", "err", err)
			for vni := range records {
				p.failed[vni] = err
			}
			p.applied = overlay.State{}
			// The names do not wait for the kernel objects: the
			// networks served already answer with this answer's.
			for vni, s := range p.nets {
				s.dns.Set(records[vni])
			}
			return
		}
		p.applied, p.appliedAt = st, time.Now()
	}
	p.reroute(ctx, routes)
	for vni, rec := range records {
		if s, ok := p.nets[vni]; ok {
			s.dns.Set(rec)
			continue
		}
		s, err := p.serveDNS(ctx, vni, gateways[vni], rec)
		if err != nil {
			p.log.Error("virtual network DNS", "vni", vni, "err", err)
			p.failed[vni] = err
			continue
		}
		p.nets[vni] = s
	}
}

// netnsID identifies network vni's gateway namespace as it is now (the
// inode of the namespace), 0 when it has none.
func (p *netPlane) netnsID(vni uint32) uint64 {
	var id uint64
	p.ov.InNetwork(vni, func() (err error) {
		id, err = threadNetns()
		return err
	})
	return id
}

// threadNetns is the inode of the calling thread's network namespace.
func threadNetns() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("agent: the thread's network namespace: %w", err)
	}
	return st.Ino, nil
}

// reroute gives the endpoints on each network whose VPN routes changed
// the new ones (Attach converges: it keeps the pair and fixes the routes);
// p.mu is held.
func (p *netPlane) reroute(ctx context.Context, routes map[uint32]vpnRoutes) {
	old := p.routes
	p.routes = routes
	for id, e := range p.attached {
		r := routes[e.Network]
		if old[e.Network].equal(r) {
			continue
		}
		e.Routes, e.Via = r.to, r.via
		if _, err := p.ov.Attach(ctx, e); err != nil {
			p.log.Error("routing an instance to its network's VPN gateway", "instance", id, "vni", e.Network, "err", err)
			continue
		}
		p.attached[id] = e
	}
}

// overlay is the node's overlay, nil before it is opened.
func (p *netPlane) overlay() *overlay.Host {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ov
}

// serveDNS starts network vni's DNS server on port 53 of its gateway
// address, inside its gateway namespace, answering from rec from its
// first query. It runs until ctx ends or the network goes.
func (p *netPlane) serveDNS(ctx context.Context, vni uint32, gw netip.Addr, rec netdns.Records) (*netServed, error) {
	var pc net.PacketConn
	var ln net.Listener
	var ns uint64
	at := netip.AddrPortFrom(gw, 53).String()
	err := p.ov.InNetwork(vni, func() (err error) {
		if ns, err = threadNetns(); err != nil {
			return err
		}
		if pc, err = net.ListenPacket("udp4", at); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", at); err != nil {
			pc.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("agent: listen for DNS on %s in network %d: %w", at, vni, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &netServed{dnsAddr: gw, dns: netdns.New(p.log), netns: ns, stop: cancel, done: make(chan struct{})}
	// Before it serves: a new server would otherwise answer NXDOMAIN
	// for every name until its first Set.
	s.dns.Set(rec)
	go func() {
		defer close(s.done)
		if err := s.dns.Serve(sctx, pc, ln); err != nil {
			p.log.Error("virtual network DNS stopped", "vni", vni, "err", err)
		}
	}()
	return s, nil
}

// ready returns the address of the DNS server of att's network on this
// node, or why the node cannot put an instance on that network now.
func (p *netPlane) ready(att *api.NetworkAttachment) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ov == nil {
		why := p.why
		if why == nil {
			why = errors.New("the node has not set up its virtual networks yet")
		}
		return netip.Addr{}, fmt.Errorf("network %s: %w", att.Network, why)
	}
	s, ok := p.nets[uint32(att.VNI)]
	if err := p.failed[uint32(att.VNI)]; !ok && err != nil {
		return netip.Addr{}, fmt.Errorf("network %s: %w", att.Network, err)
	}
	if !ok {
		return netip.Addr{}, fmt.Errorf("network %s: %w", att.Network, overlay.ErrNoNetwork)
	}
	return s.dnsAddr, nil
}

// attach puts instance id on its network (att) inside the namespace at
// netns.
func (p *netPlane) attach(ctx context.Context, id string, att *api.NetworkAttachment, netns string) error {
	if _, err := p.ready(att); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(att.Address)
	cidr, cerr := netip.ParsePrefix(att.CIDR)
	if err != nil || cerr != nil {
		return fmt.Errorf("network %s: address %q in %q: %w", att.Network, att.Address, att.CIDR, errors.Join(err, cerr))
	}
	// The whole network's prefix, not the subnet's: every subnet of the
	// network is on its one bridge, so all members are on-link.
	e := overlay.Endpoint{ID: id, Network: uint32(att.VNI), Netns: netns, Interface: endpointIface,
		Address: netip.PrefixFrom(addr, cidr.Bits())}
	// Under p.mu, so that a change of routes (reroute) either sees the
	// endpoint or is seen by it.
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.routes[e.Network]
	e.Routes, e.Via = r.to, r.via
	if _, err = p.ov.Attach(ctx, e); err != nil {
		return fmt.Errorf("network %s: %w", att.Network, err)
	}
	p.attached[id] = e
	return nil
}

// resolvConf writes the resolv.conf of an instance on a network into dir
// and returns its path: the network's DNS server, and search domains so
// that ROLE (in the instance's own service) and ROLE.SERVICE resolve.
func resolvConf(dir, service string, att *api.NetworkAttachment, gateway netip.Addr) (string, error) {
	path := filepath.Join(dir, "resolv.conf")
	body := fmt.Sprintf("# Weft: the DNS server of network %s\nnameserver %s\nsearch %s\n", att.Network, gateway, strings.Join(searchDomains(service), " "))
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return "", fmt.Errorf("resolv.conf: %w", err)
	}
	return path, nil
}

// detach takes instance id off network vni; nothing to do is no error.
func (p *netPlane) detach(ctx context.Context, vni int, id string) {
	p.mu.Lock()
	ov := p.ov
	delete(p.attached, id)
	p.mu.Unlock()
	if ov == nil {
		return
	}
	if err := ov.Detach(ctx, uint32(vni), id); err != nil {
		p.log.Error("taking an instance off its network", "instance", id, "vni", vni, "err", err)
	}
}

// sweep detaches every port on the node's networks that no instance in
// want (instance → VNI) needs: those of instances stopped while no agent
// ran, or moved to another network.
func (p *netPlane) sweep(ctx context.Context, want map[string]int) {
	p.mu.Lock()
	ov := p.ov
	p.mu.Unlock()
	if ov == nil {
		return
	}
	ports, err := ov.Ports(ctx)
	if err != nil {
		p.log.Error("listing the virtual networks' ports", "err", err)
		return
	}
	for _, port := range ports {
		if vni, ok := want[port.ID]; ok && uint32(vni) == port.Network {
			continue
		}
		p.detach(ctx, int(port.Network), port.ID)
	}
}
