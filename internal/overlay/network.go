package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// gatewayIface is the gateway namespace's side of its veth.
const gatewayIface = "gw0"

func (n Network) validate(self netip.Addr) error {
	if n.VNI == 0 || n.VNI >= 1<<24 {
		return fmt.Errorf("%w: network VNI %d (want 1 to %d)", ErrInvalid, n.VNI, 1<<24-1)
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() || n.Subnet.Bits() > 30 {
		return fmt.Errorf("%w: network %d subnet %v (want an IPv4 prefix of /30 or wider)", ErrInvalid, n.VNI, n.Subnet)
	}
	if !n.Subnet.Contains(n.Gateway) {
		return fmt.Errorf("%w: network %d gateway %v is not in %v", ErrInvalid, n.VNI, n.Gateway, n.Subnet)
	}
	for _, p := range n.Peers {
		if !p.Is4() || p == self {
			return fmt.Errorf("%w: network %d peer %v (want another host's IPv4 underlay address)", ErrInvalid, n.VNI, p)
		}
	}
	for i, r := range n.Rules {
		if err := r.validate(); err != nil {
			return fmt.Errorf("network %d rule %d: %w", n.VNI, i, err)
		}
	}
	return nil
}

// Apply makes the host carry exactly the networks in s: it creates what is
// missing, corrects what differs (a VXLAN device with another source or
// port, FDB peers), removes networks not in s with their ports and gateway
// namespaces, and rewrites the security rules. It reads the current state
// from the kernel every time, so a restarted agent calls it as a first
// step and endpoints of networks that stay are untouched. Invalid input
// (ErrInvalid) changes nothing; a kernel error stops Apply part way and a
// later Apply finishes the job.
func (h *Host) Apply(ctx context.Context, s State) error {
	seen := map[uint32]bool{}
	for _, n := range s.Networks {
		if err := n.validate(h.cfg.Underlay); err != nil {
			return err
		}
		if seen[n.VNI] {
			return fmt.Errorf("%w: network %d listed twice", ErrInvalid, n.VNI)
		}
		seen[n.VNI] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.removeStale(seen); err != nil {
		return err
	}
	for _, n := range s.Networks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h.ensureNetwork(n); err != nil {
			return err
		}
	}
	return h.writeRules(s.Networks)
}

// removeStale deletes the networks Apply made that are not in keep: their
// bridges (found by alias), every device with their prefix, and their
// gateway namespaces, including ones a crash left without a bridge.
func (h *Host) removeStale(keep map[uint32]bool) error {
	links, err := h.nl.LinkList()
	if err != nil {
		return fmt.Errorf("overlay: list links: %w", err)
	}
	stale := map[uint32]bool{}
	for _, l := range links {
		a := l.Attrs()
		if v, ok := strings.CutPrefix(a.Alias, "weft network "); ok && l.Type() == "bridge" {
			if vni, err := strconv.ParseUint(v, 10, 32); err == nil && !keep[uint32(vni)] {
				stale[uint32(vni)] = true
			}
		}
	}
	for vni := range stale {
		// Ports first, the bridge last: the prefix belongs to the network.
		for _, l := range links {
			if name := l.Attrs().Name; strings.HasPrefix(name, netPrefix(vni)) && name != bridgeName(vni) {
				if err := h.nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
					return fmt.Errorf("overlay: delete %s: %w", name, err)
				}
			}
		}
		if br, err := h.nl.LinkByName(bridgeName(vni)); err == nil {
			if err := h.nl.LinkDel(br); err != nil {
				return fmt.Errorf("overlay: delete bridge %s: %w", bridgeName(vni), err)
			}
		}
		h.log.Info("overlay: removed network", "vni", vni)
	}
	names, err := namedNetns(h.cfg.NetnsPrefix)
	if err != nil {
		return err
	}
	for _, name := range names {
		vni, err := strconv.ParseUint(strings.TrimPrefix(name, h.cfg.NetnsPrefix), 16, 32)
		if err == nil && keep[uint32(vni)] {
			continue
		}
		if err := deleteNamedNetns(name); err != nil {
			return err
		}
	}
	return nil
}

// ensureNetwork creates or corrects one network's bridge, VXLAN device,
// FDB and gateway.
func (h *Host) ensureNetwork(n Network) error {
	br, err := h.ensureBridge(n.VNI)
	if err != nil {
		return err
	}
	vx, err := h.ensureVxlan(n.VNI, br)
	if err != nil {
		return err
	}
	if err := h.syncPeers(vx, n.Peers); err != nil {
		return err
	}
	return h.ensureGateway(n, br)
}

func (h *Host) ensureBridge(vni uint32) (netlink.Link, error) {
	name := bridgeName(vni)
	l, err := h.nl.LinkByName(name)
	if err == nil && l.Type() != "bridge" {
		return nil, fmt.Errorf("overlay: %s exists and is a %s, not a bridge", name, l.Type())
	}
	if err != nil {
		if !isNotFound(err) {
			return nil, fmt.Errorf("overlay: find bridge %s: %w", name, err)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = name, h.cfg.MTU
		if err := h.nl.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
			return nil, fmt.Errorf("overlay: create bridge %s: %w", name, err)
		}
		if l, err = h.nl.LinkByName(name); err != nil {
			return nil, fmt.Errorf("overlay: find bridge %s: %w", name, err)
		}
		h.log.Info("overlay: created bridge", "vni", vni, "bridge", name)
	}
	if l.Attrs().Alias != bridgeAlias(vni) {
		if err := h.nl.LinkSetAlias(l, bridgeAlias(vni)); err != nil {
			return nil, fmt.Errorf("overlay: mark bridge %s: %w", name, err)
		}
	}
	if err := h.up(l); err != nil {
		return nil, err
	}
	return l, nil
}

func (h *Host) ensureVxlan(vni uint32, br netlink.Link) (netlink.Link, error) {
	name := vxlanName(vni)
	want := &netlink.Vxlan{VxlanId: int(vni), SrcAddr: net.IP(h.cfg.Underlay.AsSlice()), Port: h.cfg.Port, Learning: true}
	want.LinkAttrs = netlink.NewLinkAttrs()
	want.Name, want.MTU, want.MasterIndex = name, h.cfg.MTU, br.Attrs().Index
	l, err := h.nl.LinkByName(name)
	if err == nil {
		cur, ok := l.(*netlink.Vxlan)
		if ok && cur.VxlanId == want.VxlanId && cur.SrcAddr.Equal(want.SrcAddr) && cur.Port == want.Port {
			if l.Attrs().MasterIndex != br.Attrs().Index {
				if err := h.nl.LinkSetMaster(l, br); err != nil {
					return nil, fmt.Errorf("overlay: attach %s to %s: %w", name, br.Attrs().Name, err)
				}
			}
			return l, h.up(l)
		}
		// Made for another underlay address or port: make it again.
		if err := h.nl.LinkDel(l); err != nil {
			return nil, fmt.Errorf("overlay: delete outdated %s: %w", name, err)
		}
	} else if !isNotFound(err) {
		return nil, fmt.Errorf("overlay: find %s: %w", name, err)
	}
	if err := h.nl.LinkAdd(want); err != nil {
		return nil, fmt.Errorf("overlay: create vxlan %s (vni %d): %w", name, vni, err)
	}
	if l, err = h.nl.LinkByName(name); err != nil {
		return nil, fmt.Errorf("overlay: find %s: %w", name, err)
	}
	h.log.Info("overlay: created vxlan", "vni", vni, "device", name)
	return l, h.up(l)
}

// zeroMAC is the FDB address that stands for "every destination": frames
// with no learnt entry go to each such peer.
var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// syncPeers makes the VXLAN device's all-zeros FDB entries exactly peers,
// and removes entries learnt behind hosts that are no longer peers.
func (h *Host) syncPeers(vx netlink.Link, peers []netip.Addr) error {
	entries, err := h.nl.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("overlay: list fdb of %s: %w", vx.Attrs().Name, err)
	}
	want := map[netip.Addr]bool{}
	for _, p := range peers {
		want[p] = true
	}
	have := map[netip.Addr]bool{}
	for _, e := range entries {
		if e.IP == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(e.IP)
		a = a.Unmap()
		if want[a] {
			if e.HardwareAddr.String() == zeroMAC.String() {
				have[a] = true
			}
			continue
		}
		// A flood entry for a host that left, or a MAC learnt behind it:
		// frames for it would go to a host that no longer carries the
		// network until the entry aged out.
		e := e
		if err := h.nl.NeighDel(&e); err != nil {
			return fmt.Errorf("overlay: remove peer %v from %s: %w", a, vx.Attrs().Name, err)
		}
	}
	for _, p := range peers {
		if have[p] {
			continue
		}
		err := h.nl.NeighAppend(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE,
			Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT | netlink.NUD_NOARP,
			HardwareAddr: zeroMAC, IP: net.IP(p.AsSlice())})
		if err != nil {
			return fmt.Errorf("overlay: add peer %v to %s: %w", p, vx.Attrs().Name, err)
		}
		have[p] = true
	}
	return nil
}

// ensureGateway makes the network's gateway namespace and its veth to the
// bridge, with the gateway address and nothing else on gw0.
func (h *Host) ensureGateway(n Network, br netlink.Link) error {
	path, err := ensureNamedNetns(h.netnsName(n.VNI))
	if err != nil {
		return err
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("overlay: open gateway namespace %s: %w", path, err)
	}
	defer ns.Close()
	inside, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("overlay: netlink in %s: %w", path, err)
	}
	defer inside.Close()
	name := gatewayLink(n.VNI)
	l, err := h.nl.LinkByName(name)
	if err == nil {
		// A veth whose peer went with a deleted namespace is gone with it;
		// one whose peer is elsewhere is made again.
		if _, perr := inside.LinkByName(gatewayIface); perr != nil {
			if err := h.nl.LinkDel(l); err != nil {
				return fmt.Errorf("overlay: delete %s: %w", name, err)
			}
			l = nil
		}
	} else if !isNotFound(err) {
		return fmt.Errorf("overlay: find %s: %w", name, err)
	}
	if l == nil {
		if _, err := inside.LinkByName(gatewayIface); err == nil {
			return fmt.Errorf("overlay: %s in %s has no peer %s on the host", gatewayIface, path, name)
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU, attrs.MasterIndex = name, h.cfg.MTU, br.Attrs().Index
		v := &netlink.Veth{LinkAttrs: attrs, PeerName: gatewayIface, PeerNamespace: netlink.NsFd(ns), PeerMTU: uint32(h.cfg.MTU),
			PeerHardwareAddr: gatewayMAC(n.VNI)}
		if err := h.nl.LinkAdd(v); err != nil {
			return fmt.Errorf("overlay: create %s: %w", name, err)
		}
		if l, err = h.nl.LinkByName(name); err != nil {
			return fmt.Errorf("overlay: find %s: %w", name, err)
		}
		h.log.Info("overlay: created gateway", "vni", n.VNI, "namespace", path)
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.nl.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("overlay: attach %s: %w", name, err)
		}
	}
	if err := h.up(l); err != nil {
		return err
	}
	gw, err := inside.LinkByName(gatewayIface)
	if err != nil {
		return fmt.Errorf("overlay: find %s in %s: %w", gatewayIface, path, err)
	}
	if err := h.anycastGateway(n.VNI, l, inside, gw); err != nil {
		return err
	}
	want := netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
	if err := setOnlyAddress(inside, gw, want); err != nil {
		return fmt.Errorf("overlay: gateway of network %d: %w", n.VNI, err)
	}
	lo, err := inside.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("overlay: find lo in %s: %w", path, err)
	}
	if err := inside.LinkSetUp(lo); err != nil {
		return fmt.Errorf("overlay: lo up in %s: %w", path, err)
	}
	if err := inside.LinkSetUp(gw); err != nil {
		return fmt.Errorf("overlay: %s up in %s: %w", gatewayIface, path, err)
	}
	return nil
}

// setOnlyAddress puts want on l and removes its other IPv4 addresses (a
// gateway or endpoint address that changed).
func setOnlyAddress(nl *netlink.Handle, l netlink.Link, want netip.Prefix) error {
	addrs, err := nl.AddrList(l, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if netip.PrefixFrom(ip, ones) == want {
			return nil
		}
	}
	for _, a := range addrs {
		a := a
		if err := nl.AddrDel(l, &a); err != nil {
			return fmt.Errorf("remove %v from %s: %w", a.IPNet, l.Attrs().Name, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(want.Addr().AsSlice()), Mask: net.CIDRMask(want.Bits(), 32)}}
	if err := nl.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("add %v to %s: %w", want, l.Attrs().Name, err)
	}
	return nil
}

func (h *Host) up(l netlink.Link) error {
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("overlay: set %s up: %w", l.Attrs().Name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// InNetwork runs fn on a thread inside network vni's gateway namespace;
// sockets fn opens stay there (the agent opens the network's DNS listener
// on the gateway address this way). It fails with ErrNoNetwork if Apply
// has not made the network.
func (h *Host) InNetwork(vni uint32, fn func() error) error {
	path := netnsDir + "/" + h.netnsName(vni)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("%w: %d (%v)", ErrNoNetwork, vni, err)
	}
	defer ns.Close()
	return onThreadIn(ns, fn)
}
