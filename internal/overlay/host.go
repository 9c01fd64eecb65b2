package overlay

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Config says where a Host's objects go.
type Config struct {
	// NetNS is the path of the host's network namespace; "" is the calling
	// process's own. Tests give each simulated host a namespace.
	NetNS string
	// Underlay is this host's address on the network between hosts; VXLAN
	// packets leave from it and other hosts list it as a peer.
	Underlay netip.Addr
	// NetnsPrefix starts the names of the gateway namespaces under
	// /run/netns (default "weft-net-"). Only one Host may use a prefix on a
	// machine: Apply deletes any namespace with it that is not desired.
	NetnsPrefix string
	// MTU of the bridges and endpoints (default 1450: 1500 less VXLAN's 50
	// bytes of outer headers).
	MTU int
	// Port is the VXLAN UDP port (default 4789).
	Port int
	// Logger gets one line per object created or removed.
	Logger *slog.Logger
}

// Network is the desired state of one network on this host.
type Network struct {
	// VNI identifies the network on the wire and in device names
	// (1 to 2^24-1).
	VNI uint32
	// Subnet is the network's address range; Gateway is in it and is the
	// address of the network's gateway namespace (and its DNS server).
	Subnet  netip.Prefix
	Gateway netip.Addr
	// Peers are the underlay addresses of the other hosts that carry this
	// network; broadcast and unknown unicast are replicated to each.
	Peers []netip.Addr
	// Rules are the network's security rules, first match wins.
	Rules []Rule
}

// State is everything this host should carry. Networks not in it are
// removed by Apply, with their endpoints.
type State struct {
	Networks []Network
}

// Host programs one host's networks. Its methods are safe for concurrent
// use; they serialise on one lock, as they change shared kernel objects.
type Host struct {
	cfg Config
	log *slog.Logger
	ns  netns.NsHandle // the host's namespace, or -1 for the caller's own
	nl  *netlink.Handle

	mu sync.Mutex
}

// Errors callers can test for with errors.Is.
var (
	// ErrInvalid means a Network, Rule or Endpoint does not make sense; the
	// message names the field.
	ErrInvalid = errors.New("overlay: invalid")
	// ErrNoNetwork means an endpoint names a network Apply has not made.
	ErrNoNetwork = errors.New("overlay: no such network on this host")
)

// Open prepares to program the host described by cfg. It turns on
// br_netfilter for IPv4 in the host's namespace (the security rules need
// it) and checks that namespace can be reached; it creates nothing else.
func Open(cfg Config) (*Host, error) {
	if !cfg.Underlay.Is4() {
		return nil, fmt.Errorf("%w: underlay address %v is not IPv4", ErrInvalid, cfg.Underlay)
	}
	if cfg.NetnsPrefix == "" {
		cfg.NetnsPrefix = "weft-net-"
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1450
	}
	if cfg.Port == 0 {
		cfg.Port = 4789
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, ns: netns.None()}
	var err error
	if cfg.NetNS != "" {
		if h.ns, err = netns.GetFromPath(cfg.NetNS); err != nil {
			return nil, fmt.Errorf("overlay: open host namespace %s: %w", cfg.NetNS, err)
		}
		h.nl, err = netlink.NewHandleAt(h.ns)
	} else {
		h.nl, err = netlink.NewHandle()
	}
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("overlay: netlink: %w", err)
	}
	err = inNetns(cfg.NetNS, func() error {
		return os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("1\n"), 0)
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("overlay: turn on br_netfilter: %w", err)
	}
	return h, nil
}

// Close releases the Host's handles. The kernel objects stay: a new Host
// (an agent restarted) reads them back.
func (h *Host) Close() error {
	if h.nl != nil {
		h.nl.Close()
	}
	if h.ns.IsOpen() {
		return h.ns.Close()
	}
	return nil
}

// Device and namespace names. Every device of network v starts with
// w<v as six hex digits> (at most 15 bytes in all, the kernel's limit), so
// one prefix finds them all.
func netPrefix(vni uint32) string   { return fmt.Sprintf("w%06x", vni) }
func bridgeName(vni uint32) string  { return netPrefix(vni) + "b" }
func vxlanName(vni uint32) string   { return netPrefix(vni) + "x" }
func gatewayLink(vni uint32) string { return netPrefix(vni) + "g" }
func (h *Host) netnsName(vni uint32) string {
	return fmt.Sprintf("%s%06x", h.cfg.NetnsPrefix, vni)
}

// portName names an endpoint's host-side device: kind 'e' for veth, 't' for
// tap, then 28 bits of the ID's hash (a clash between two endpoints of one
// network on one host is refused by Attach, not silently shared).
func portName(vni uint32, kind byte, id string) string {
	f := fnv.New32a()
	f.Write([]byte(id))
	return fmt.Sprintf("%s%c%07x", netPrefix(vni), kind, f.Sum32()&0xfffffff)
}

// endpointMAC is a stable, locally administered address for an endpoint, so
// neighbours' ARP caches stay right when an endpoint is attached again.
func endpointMAC(id string) net.HardwareAddr {
	f := fnv.New64a()
	f.Write([]byte(id))
	s := f.Sum64()
	return net.HardwareAddr{0x02, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// bridgeAlias marks bridges Apply made, so it removes only its own.
func bridgeAlias(vni uint32) string { return fmt.Sprintf("weft network %d", vni) }

// portAlias keeps an endpoint's ID on its host-side device.
const portAliasPrefix = "weft endpoint "
