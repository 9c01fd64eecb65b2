package overlay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftcloud/weft/internal/linkroutes"
)

// Endpoint is an instance's place on a network: a veth pair from the
// network's bridge into the instance's own namespace.
type Endpoint struct {
	// ID names the endpoint (the instance); it is kept on the host-side
	// device for Ports.
	ID      string
	Network uint32
	// Netns is the path of the instance's network namespace
	// (/proc/PID/ns/net or a bind mount).
	Netns string
	// Interface is the name inside the namespace (default "eth0").
	Interface string
	// Address is the endpoint's address with the subnet's length.
	Address netip.Prefix
	// Gateway, when valid, becomes the default route inside.
	Gateway netip.Addr
	// Routes, through Via (an address on the network), are the only
	// routes on the interface besides its connected one: the networks on
	// premises behind the network's VPN gateway.
	Routes []netip.Prefix
	Via    netip.Addr
}

// Tap is a VM's place on a network: a persistent tap device on the
// network's bridge that QEMU opens by name (-netdev tap,ifname=...,
// script=no,downscript=no). The guest configures its own address.
type Tap struct {
	ID      string
	Network uint32
}

// Port is an endpoint or tap found on the host.
type Port struct {
	ID      string
	Network uint32
	Device  string // the host-side device
	Tap     bool
}

// Attach puts e on its network: the veth pair, the address and the default
// route inside e.Netns, the host end on the bridge. It converges: attaching
// an endpoint whose pair exists already puts the address and route right
// and keeps the pair (a restarted agent may attach everything again); a
// host-side device whose peer is not in e.Netns (the instance got a new
// namespace) is replaced. It fails with ErrNoNetwork before Apply has made
// the network; on a failure half way it removes what it made.
func (h *Host) Attach(ctx context.Context, e Endpoint) (Port, error) {
	if e.ID == "" || e.Netns == "" {
		return Port{}, fmt.Errorf("%w: endpoint needs an ID and a namespace", ErrInvalid)
	}
	if !e.Address.IsValid() || !e.Address.Addr().Is4() {
		return Port{}, fmt.Errorf("%w: endpoint %s address %v is not an IPv4 prefix", ErrInvalid, e.ID, e.Address)
	}
	if e.Gateway.IsValid() && !e.Address.Masked().Contains(e.Gateway) {
		return Port{}, fmt.Errorf("%w: endpoint %s gateway %v is not in %v", ErrInvalid, e.ID, e.Gateway, e.Address.Masked())
	}
	if e.Interface == "" {
		e.Interface = "eth0"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	name := portName(e.Network, 'e', e.ID)
	p := Port{ID: e.ID, Network: e.Network, Device: name}
	br, err := h.bridge(e.Network)
	if err != nil {
		return Port{}, err
	}
	ns, err := netns.GetFromPath(e.Netns)
	if err != nil {
		return Port{}, fmt.Errorf("overlay: endpoint %s namespace %s: %w", e.ID, e.Netns, err)
	}
	defer ns.Close()
	if l, err := h.nl.LinkByName(name); err == nil {
		paired, err := pairedInside(ns, l, e)
		if err != nil {
			return Port{}, fmt.Errorf("overlay: endpoint %s: %w", e.ID, err)
		}
		if paired {
			if err := h.adopt(l, br, e.ID); err != nil {
				return Port{}, err
			}
			if err := configureInside(ns, e); err != nil {
				return Port{}, fmt.Errorf("overlay: endpoint %s: %w", e.ID, err)
			}
			return p, nil
		}
		// The instance has a new namespace (it restarted) and the old
		// one is still held somewhere: start over in the new one.
		if err := h.nl.LinkDel(l); err != nil {
			return Port{}, fmt.Errorf("overlay: endpoint %s: delete %s: %w", e.ID, name, err)
		}
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.MasterIndex = name, h.cfg.MTU, br.Attrs().Index
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: e.Interface, PeerNamespace: netlink.NsFd(ns),
		PeerMTU: uint32(h.cfg.MTU), PeerHardwareAddr: endpointMAC(e.ID)}
	if err := h.nl.LinkAdd(v); err != nil {
		return Port{}, fmt.Errorf("overlay: endpoint %s: create %s with %s in %s: %w", e.ID, name, e.Interface, e.Netns, err)
	}
	l, err := h.nl.LinkByName(name)
	if err == nil {
		err = h.adopt(l, br, e.ID)
	}
	if err == nil {
		err = configureInside(ns, e)
	}
	if err != nil {
		if l != nil {
			h.nl.LinkDel(l)
		}
		return Port{}, fmt.Errorf("overlay: endpoint %s: %w", e.ID, err)
	}
	h.log.Info("overlay: attached endpoint", "endpoint", e.ID, "vni", e.Network, "device", name, "address", e.Address)
	return p, nil
}

// pairedInside tells whether host-side veth l is the peer of e's interface
// in ns: the two name each other's index and the inside one has e's MAC.
func pairedInside(ns netns.NsHandle, l netlink.Link, e Endpoint) (bool, error) {
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false, fmt.Errorf("netlink in %s: %w", e.Netns, err)
	}
	defer nl.Close()
	in, err := nl.LinkByName(e.Interface)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find %s in %s: %w", e.Interface, e.Netns, err)
	}
	return in.Type() == "veth" && in.Attrs().ParentIndex == l.Attrs().Index &&
		l.Attrs().ParentIndex == in.Attrs().Index &&
		in.Attrs().HardwareAddr.String() == endpointMAC(e.ID).String(), nil
}

// configureInside gives the endpoint's interface its address and the
// namespace its default route through the gateway.
func configureInside(ns netns.NsHandle, e Endpoint) error {
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", e.Netns, err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(e.Interface)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", e.Interface, e.Netns, err)
	}
	if err := setOnlyAddress(nl, l, e.Address); err != nil {
		return err
	}
	if err := nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up in %s: %w", e.Interface, e.Netns, err)
	}
	if lo, err := nl.LinkByName("lo"); err == nil {
		if err := nl.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up in %s: %w", e.Netns, err)
		}
	}
	if e.Gateway.IsValid() {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IP(e.Gateway.AsSlice())}
		if err := nl.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %v in %s: %w", e.Gateway, e.Netns, err)
		}
	}
	if len(e.Routes) > 0 && !e.Via.IsValid() {
		return fmt.Errorf("%w: endpoint %s has routes but no address to route them through", ErrInvalid, e.ID)
	}
	if err := linkroutes.Sync(nl, l, e.Routes, e.Via); err != nil {
		return fmt.Errorf("routes of %s in %s: %w", e.Interface, e.Netns, err)
	}
	return nil
}

// AttachTap makes t's tap device on its network's bridge and returns it
// with the MAC address the VM should use (stable for t.ID, so a VM keeps it
// across relocation). An existing device is kept, as with Attach.
func (h *Host) AttachTap(ctx context.Context, t Tap) (Port, net.HardwareAddr, error) {
	if t.ID == "" {
		return Port{}, nil, fmt.Errorf("%w: tap needs an ID", ErrInvalid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	name := portName(t.Network, 't', t.ID)
	p := Port{ID: t.ID, Network: t.Network, Device: name, Tap: true}
	br, err := h.bridge(t.Network)
	if err != nil {
		return Port{}, nil, err
	}
	if l, err := h.nl.LinkByName(name); err == nil {
		return p, endpointMAC(t.ID), h.adopt(l, br, t.ID)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = name, h.cfg.MTU
	tap := &netlink.Tuntap{LinkAttrs: attrs, Mode: netlink.TUNTAP_MODE_TAP,
		Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_ONE_QUEUE}
	// The tap is made through /dev/net/tun, which acts in the calling
	// thread's namespace, not the netlink handle's.
	err = inNetns(h.cfg.NetNS, func() error { return netlink.LinkAdd(tap) })
	if err != nil {
		return Port{}, nil, fmt.Errorf("overlay: tap %s: create %s: %w", t.ID, name, err)
	}
	l, err := h.nl.LinkByName(name)
	if err == nil {
		err = h.adopt(l, br, t.ID)
	}
	if err != nil {
		if l != nil {
			h.nl.LinkDel(l)
		}
		return Port{}, nil, fmt.Errorf("overlay: tap %s: %w", t.ID, err)
	}
	h.log.Info("overlay: attached tap", "endpoint", t.ID, "vni", t.Network, "device", name)
	return p, endpointMAC(t.ID), nil
}

// adopt marks l as endpoint id's, puts it on br and brings it up. A device
// with the name but another endpoint's mark is a hash clash: refused.
func (h *Host) adopt(l netlink.Link, br netlink.Link, id string) error {
	name := l.Attrs().Name
	if a := l.Attrs().Alias; a != "" && a != portAliasPrefix+id {
		return fmt.Errorf("overlay: %s belongs to %q, not endpoint %s", name, strings.TrimPrefix(a, portAliasPrefix), id)
	}
	if l.Attrs().Alias == "" {
		if err := h.nl.LinkSetAlias(l, portAliasPrefix+id); err != nil {
			return fmt.Errorf("overlay: mark %s: %w", name, err)
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.nl.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("overlay: attach %s to %s: %w", name, br.Attrs().Name, err)
		}
	}
	return h.up(l)
}

// Detach removes endpoint or tap id from network vni (a veth takes its peer
// in the instance's namespace with it). Detaching what is not there is not
// an error.
func (h *Host) Detach(ctx context.Context, vni uint32, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, kind := range []byte{'e', 't'} {
		name := portName(vni, kind, id)
		l, err := h.nl.LinkByName(name)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("overlay: find %s: %w", name, err)
		}
		if l.Attrs().Alias != portAliasPrefix+id {
			continue
		}
		if err := h.nl.LinkDel(l); err != nil {
			return fmt.Errorf("overlay: detach %s (%s): %w", id, name, err)
		}
		h.log.Info("overlay: detached", "endpoint", id, "vni", vni, "device", name)
	}
	return nil
}

// Ports lists the endpoints and taps on the host's networks, read from the
// kernel: a restarted agent compares them with the instances it runs and
// detaches the rest.
func (h *Host) Ports(ctx context.Context) ([]Port, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	links, err := h.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("overlay: list links: %w", err)
	}
	var ports []Port
	for _, l := range links {
		a := l.Attrs()
		id, ok := strings.CutPrefix(a.Alias, portAliasPrefix)
		if !ok || len(a.Name) != 15 || a.Name[0] != 'w' {
			continue
		}
		vni, err := strconv.ParseUint(a.Name[1:7], 16, 32)
		if err != nil {
			continue
		}
		ports = append(ports, Port{ID: id, Network: uint32(vni), Device: a.Name, Tap: a.Name[7] == 't'})
	}
	return ports, nil
}

// bridge finds network vni's bridge, or ErrNoNetwork.
func (h *Host) bridge(vni uint32) (netlink.Link, error) {
	br, err := h.nl.LinkByName(bridgeName(vni))
	if isNotFound(err) || (err == nil && br.Attrs().Alias != bridgeAlias(vni)) {
		return nil, fmt.Errorf("%w: %d", ErrNoNetwork, vni)
	}
	if err != nil {
		return nil, fmt.Errorf("overlay: find bridge of network %d: %w", vni, err)
	}
	return br, nil
}
