package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/overlay"
	"github.com/weftcloud/weft/internal/wireguard"
)

// vpnPlane runs the VPN gateways the controller assigns to the node
// (api.Assignments.VPNs). A gateway is a WireGuard tunnel in user space
// (package wireguard) in this process: its UDP socket on the node's own
// namespace (the host's address: the endpoint the peer reaches), its TUN
// device wg0 in a namespace of its own, weft-vpn-<node hash>-<VNI>, joined
// to the network's bridge like an instance (overlay.Attach) with the
// gateway's address. That namespace routes the peer's CIDRs into the
// tunnel and the network's CIDR onto the bridge, and nothing else: it has
// no default route and no other interface, and WireGuard accepts from the
// peer only packets from the peer's CIDRs. The tunnel lives as long as
// the agent; a restarted agent brings it up again, with the same key.
type vpnPlane struct {
	log  *slog.Logger
	self string
	net  *netPlane

	mu      sync.Mutex
	running map[string]*gatewayRun // by networks.Key
	failed  map[string]string      // why a gateway is not running, logged once
}

// gatewayRun is one gateway running here.
type gatewayRun struct {
	spec api.NodeVPN
	ns   string // the namespace's name
	tun  *wireguard.Tunnel
}

// vpnIface is the tunnel's device in the gateway's namespace, and
// vpnLink its interface on the network.
const (
	vpnIface = "wg0"
	vpnLink  = "eth0"
)

// vpnKeepalive matches the peer configuration's PersistentKeepalive.
const vpnKeepalive = 25 * time.Second

func newVPNPlane(log *slog.Logger, self string, np *netPlane) *vpnPlane {
	return &vpnPlane{log: log, self: self, net: np, running: map[string]*gatewayRun{}, failed: map[string]string{}}
}

// vpnNetnsPrefix starts the names of an agent's VPN gateway namespaces
// (see agentID).
func vpnNetnsPrefix(agentID string) string { return "weft-vpn-" + agentID + "-" }

// vpnEndpoint is the ID of a gateway's port on its network's bridge.
func vpnEndpoint(v api.NodeVPN) string { return "vpn:" + networks.Key(v.Tenant, v.Network) }

// apply runs exactly the gateways in want: it stops those no longer
// wanted or changed and starts the missing ones. The networks must have
// been applied first (netPlane.apply). A gateway that fails to start is
// logged and tried again on the next answer.
func (v *vpnPlane) apply(ctx context.Context, want []api.NodeVPN) {
	v.mu.Lock()
	defer v.mu.Unlock()
	wanted := map[string]api.NodeVPN{}
	for _, g := range want {
		wanted[networks.Key(g.Tenant, g.Network)] = g
	}
	for key, r := range v.running {
		if g, ok := wanted[key]; !ok || !reflect.DeepEqual(g, r.spec) {
			v.stop(ctx, key, r, ok)
		}
	}
	if len(want) == 0 && len(v.running) == 0 && v.net.overlay() == nil {
		return // never had a gateway nor a network
	}
	keepNs := map[string]bool{}
	for key, g := range wanted {
		keepNs[v.nsName(g)] = true
		if _, ok := v.running[key]; ok {
			continue
		}
		r, err := v.start(ctx, g)
		if err != nil {
			if v.failed[key] != err.Error() {
				v.log.Error("VPN gateway not running", "tenant", g.Tenant, "network", g.Network, "err", err)
				v.failed[key] = err.Error()
			}
			continue
		}
		delete(v.failed, key)
		v.running[key] = r
		v.log.Info("VPN gateway running", "tenant", g.Tenant, "network", g.Network, "port", g.ListenPort, "namespace", r.ns)
	}
	// Namespaces of gateways that went while no agent ran.
	names, err := overlay.Namespaces(vpnNetnsPrefix(v.net.agentID))
	if err != nil {
		v.log.Error("listing VPN gateway namespaces", "err", err)
	}
	for _, name := range names {
		if !keepNs[name] {
			if err := overlay.DeleteNamespace(name); err != nil {
				v.log.Error("removing a VPN gateway namespace", "namespace", name, "err", err)
			}
		}
	}
}

func (v *vpnPlane) nsName(g api.NodeVPN) string {
	return fmt.Sprintf("%s%06x", vpnNetnsPrefix(v.net.agentID), g.VNI)
}

// start brings up gateway g: its namespace on the network, the tunnel and
// the routes.
func (v *vpnPlane) start(ctx context.Context, g api.NodeVPN) (r *gatewayRun, err error) {
	ov := v.net.overlay()
	if ov == nil {
		return nil, errors.New("the node carries no virtual network (is the agent root, with an IPv4 --host?)")
	}
	addr, err := netip.ParseAddr(g.Address)
	cidr, cerr := netip.ParsePrefix(g.CIDR)
	if err != nil || cerr != nil {
		return nil, fmt.Errorf("gateway address %q in %q: %w", g.Address, g.CIDR, errors.Join(err, cerr))
	}
	private, err := wireguard.ParseKey(g.PrivateKey)
	if err != nil {
		return nil, err
	}
	peerKey, err := wireguard.ParseKey(g.PeerPublicKey)
	if err != nil {
		return nil, err
	}
	var allowed []netip.Prefix
	for _, c := range g.PeerCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("peer CIDR %q: %w", c, err)
		}
		allowed = append(allowed, p)
	}
	peerAt, err := resolveEndpoint(ctx, g.PeerEndpoint)
	if err != nil {
		return nil, err
	}
	name := v.nsName(g)
	path, err := overlay.EnsureNamespace(name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ov.Detach(ctx, uint32(g.VNI), vpnEndpoint(g))
			overlay.DeleteNamespace(name)
		}
	}()
	_, err = ov.Attach(ctx, overlay.Endpoint{ID: vpnEndpoint(g), Network: uint32(g.VNI), Netns: path, Interface: vpnLink,
		Address: netip.PrefixFrom(addr, cidr.Bits())})
	if err != nil {
		return nil, err
	}
	tun, err := wireguard.Open(wireguard.Config{
		Name:       vpnIface,
		TunIn:      func(fn func() error) error { return overlay.InNamespace(path, fn) },
		PrivateKey: private,
		ListenPort: g.ListenPort,
		Peers:      []wireguard.Peer{{PublicKey: peerKey, Endpoint: peerAt, AllowedIPs: allowed, Keepalive: vpnKeepalive}},
		Logger:     v.log.With("tenant", g.Tenant, "network", g.Network),
	})
	if err != nil {
		return nil, err
	}
	if err := overlay.RouteTunnel(path, vpnIface, netip.Prefix{}, allowed); err != nil {
		tun.Close()
		return nil, err
	}
	return &gatewayRun{spec: g, ns: name, tun: tun}, nil
}

// resolveEndpoint reads HOST:PORT, looking a host name up (IPv4 first).
func resolveEndpoint(ctx context.Context, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("peer endpoint %q: %w", s, err)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("peer endpoint %q: look up %s: %w", s, host, err)
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return netip.ParseAddrPort(net.JoinHostPort(a.Unmap().String(), port))
		}
	}
	return netip.ParseAddrPort(net.JoinHostPort(addrs[0].String(), port))
}

// stop takes a gateway down: the tunnel always; its port and namespace
// unless it is only being restarted with a new spec (again).
func (v *vpnPlane) stop(ctx context.Context, key string, r *gatewayRun, again bool) {
	r.tun.Close()
	delete(v.running, key)
	if again {
		v.log.Info("VPN gateway restarting with new settings", "tenant", r.spec.Tenant, "network", r.spec.Network)
		return
	}
	if ov := v.net.overlay(); ov != nil {
		if err := ov.Detach(ctx, uint32(r.spec.VNI), vpnEndpoint(r.spec)); err != nil {
			v.log.Error("taking a VPN gateway off its network", "network", r.spec.Network, "err", err)
		}
	}
	if err := overlay.DeleteNamespace(r.ns); err != nil {
		v.log.Error("removing a VPN gateway namespace", "namespace", r.ns, "err", err)
	}
	v.log.Info("VPN gateway stopped", "tenant", r.spec.Tenant, "network", r.spec.Network)
}

// keep adds the ports of the running gateways to want (instance or port
// ID → VNI), so that netPlane.sweep leaves them.
func (v *vpnPlane) keep(want map[string]int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, r := range v.running {
		want[vpnEndpoint(r.spec)] = r.spec.VNI
	}
}

// close stops the tunnels (they live in this process); the namespaces
// and ports stay for the next agent.
func (v *vpnPlane) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for key, r := range v.running {
		r.tun.Close()
		delete(v.running, key)
	}
}

var (
	vpnGatewaysDesc = prometheus.NewDesc("weft_agent_vpn_gateways", "VPN gateways running on this node.", nil, nil)
	vpnBytesDesc    = prometheus.NewDesc("weft_agent_vpn_bytes_total",
		"Bytes a VPN gateway's tunnel carried, by network (TENANT/NETWORK) and direction (rx from the peer, tx to it).", []string{"network", "direction"}, nil)
)

// vpnCollector reads the gateways' counters at each scrape.
type vpnCollector struct{ v *vpnPlane }

var _ prometheus.Collector = vpnCollector{}

func (vpnCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- vpnGatewaysDesc
	ch <- vpnBytesDesc
}

func (c vpnCollector) Collect(ch chan<- prometheus.Metric) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(vpnGatewaysDesc, prometheus.GaugeValue, float64(len(c.v.running)))
	for key, r := range c.v.running {
		st, err := r.tun.Stats()
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(vpnBytesDesc, prometheus.CounterValue, float64(st.RxBytes), key, "rx")
		ch <- prometheus.MustNewConstMetric(vpnBytesDesc, prometheus.CounterValue, float64(st.TxBytes), key, "tx")
	}
}
