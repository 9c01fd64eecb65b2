package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/overlay"
)

// attachVM puts vm instance id (of service) on its network (att), before
// its QEMU starts (or, at a live migration's destination, before the
// incoming QEMU does): a tap on the network's bridge, which the driver
// gives the VM as a virtio-net device with vmMAC, and the settings the
// guest configures itself with (the address, the network's DNS server at
// dns, the search domains a container gets too, and the network's VPN
// routes as they are now: routeVMs gives it later ones).
func (p *netPlane) attachVM(ctx context.Context, id, service string, att *api.NetworkAttachment, dns netip.Addr) (*driver.NIC, error) {
	addr, err := netip.ParseAddr(att.Address)
	cidr, cerr := netip.ParsePrefix(att.CIDR)
	if err != nil || cerr != nil || !addr.Is4() {
		return nil, fmt.Errorf("network %s: address %q in %q is not an IPv4 address in a prefix", att.Network, att.Address, att.CIDR)
	}
	p.mu.Lock()
	ov, routes := p.ov, p.routes[uint32(att.VNI)]
	p.mu.Unlock()
	port, _, err := ov.AttachTap(ctx, overlay.Tap{ID: id, Network: uint32(att.VNI)})
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", att.Network, err)
	}
	// The whole network's prefix, as for containers: every subnet is on
	// the one bridge.
	return &driver.NIC{Tap: port.Device, MAC: vmMAC(uint32(att.VNI), addr).String(),
		Address: netip.PrefixFrom(addr, cidr.Bits()).String(), DNS: dns.String(), Search: searchDomains(service),
		Routes: routes.to, Via: routes.via}, nil
}

// vmMAC is the MAC of a VM with address addr on network vni: locally
// administered (02), a byte of the VNI, then the address. It follows the
// address, which a persistent VM keeps across restarts, relocation and
// live migration, while its instance ID changes when it is recreated
// elsewhere; and no two VMs of a network share it, as no two share an
// address. (The overlay's own MAC for a tap follows the instance ID.)
func vmMAC(vni uint32, addr netip.Addr) net.HardwareAddr {
	a := addr.As4()
	return net.HardwareAddr{0x02, byte(vni), a[0], a[1], a[2], a[3]}
}

// searchDomains are the DNS search domains of an instance of service on
// a network: ROLE (in its own service) and ROLE.SERVICE resolve, and so
// does NAME.vm for a VM.
func searchDomains(service string) []string {
	return []string{service + ".internal", "internal"}
}
