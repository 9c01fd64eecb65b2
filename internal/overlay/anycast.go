package overlay

import (
	"bytes"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Every host carrying a network holds its gateway address in its own
// gateway namespace, on the network's one segment. Were each gw0's MAC its
// own, an endpoint's ARP entry for the gateway would name whichever host
// answered first, and it would lose its DNS server when that host stops
// carrying the network (a VM that migrated away from it, or whose
// neighbours left it) until the entry expires, half a minute or more. So
// the gateway is anycast, as in a distributed gateway: gw0 has the same MAC
// on every host (gatewayMAC), and a sticky static entry in the bridge's
// forwarding table keeps that MAC on the local gateway port, so frames to
// it never leave the host even when another host's gateway answers an ARP
// request with it.

// gatewayMAC is network vni's gateway MAC: locally administered unicast
// (06, where endpoints' MACs start with 02) and the VNI.
func gatewayMAC(vni uint32) net.HardwareAddr {
	return net.HardwareAddr{0x06, 0x77, 0x66, byte(vni >> 16), byte(vni >> 8), byte(vni)}
}

// anycastGateway gives gw (gw0, through inside) the network's gateway MAC
// and pins that MAC to port, the host side of its veth, on the bridge.
func (h *Host) anycastGateway(vni uint32, port netlink.Link, inside *netlink.Handle, gw netlink.Link) error {
	mac := gatewayMAC(vni)
	if !bytes.Equal(gw.Attrs().HardwareAddr, mac) {
		if err := inside.LinkSetHardwareAddr(gw, mac); err != nil {
			return fmt.Errorf("overlay: gateway MAC of network %d: %w", vni, err)
		}
	}
	err := h.nl.NeighSet(&netlink.Neigh{LinkIndex: port.Attrs().Index, Family: unix.AF_BRIDGE,
		State: netlink.NUD_NOARP, Flags: netlink.NTF_MASTER | netlink.NTF_STICKY, HardwareAddr: mac})
	if err != nil {
		return fmt.Errorf("overlay: pin the gateway MAC of network %d to %s: %w", vni, port.Attrs().Name, err)
	}
	return nil
}
