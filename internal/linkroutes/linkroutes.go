// Package linkroutes makes the routes of one network interface exactly a
// given set: the routes to a virtual network's peers behind its VPN
// gateway, in a container's namespace (package overlay) and in a VM's
// guest (package guest's agent), and a tunnel's routes.
package linkroutes

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Sync makes the IPv4 routes of link l that have a destination exactly
// want: through via when it is valid (an address on l's network), else
// straight out of l. Its connected routes (the kernel's) and a default
// route are not touched; any other route on l with a destination is
// removed.
func Sync(nl *netlink.Handle, l netlink.Link, want []netip.Prefix, via netip.Addr) error {
	have, err := nl.RouteList(l, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	wanted := map[netip.Prefix]bool{}
	for _, p := range want {
		wanted[p.Masked()] = true
	}
	for _, r := range have {
		if r.Dst == nil || r.Protocol == unix.RTPROT_KERNEL || wanted[prefixOf(r.Dst)] {
			continue
		}
		if err := nl.RouteDel(&r); err != nil {
			return fmt.Errorf("remove %v: %w", r.Dst, err)
		}
	}
	for _, p := range want {
		if !p.Addr().Is4() {
			return fmt.Errorf("add %v: not an IPv4 prefix", p)
		}
		p = p.Masked()
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 32)}}
		if via.IsValid() {
			r.Gw = net.IP(via.AsSlice())
		} else {
			r.Scope = netlink.SCOPE_LINK
		}
		if err := nl.RouteReplace(r); err != nil {
			return fmt.Errorf("add %v: %w", p, err)
		}
	}
	return nil
}

func prefixOf(n *net.IPNet) netip.Prefix {
	a, _ := netip.AddrFromSlice(n.IP.To4())
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits)
}
