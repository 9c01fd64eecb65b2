// Package overlay programs one host's share of Weft's private tenant
// networks: the kernel objects the node agent creates, reads back and
// removes so that endpoints of one network reach each other across hosts
// and nothing else.
//
// # Shape on a host
//
// For each network (identified by its VXLAN network identifier, VNI) a host
// has, in its own network namespace:
//
//   - a Linux bridge, w<vni>b (the VNI as six hex digits), with no IP
//     address;
//   - a VXLAN device w<vni>x with the network's VNI, a port of that bridge,
//     sourcing from the host's underlay address. Learning is on; one
//     all-zeros FDB entry per other host carrying the network makes the
//     kernel replicate broadcast, unknown-unicast and multicast frames to
//     each of them (head-end replication: no multicast in the underlay);
//   - a gateway namespace (NetnsPrefix and the VNI's six hex digits, under
//     /run/netns) joined to the bridge by
//     the veth w<vni>g, holding the network's gateway address on its gw0,
//     with the same MAC on every host (anycast.go).
//     The network's DNS server listens there (see InNetwork);
//   - one port per endpoint: a veth w<vni>e<hash> whose peer sits in the
//     endpoint's own namespace (containers and process instances) with its
//     address and a default route through the gateway, or a persistent tap
//     w<vni>t<hash> that QEMU opens. The endpoint's ID is kept in the host
//     end's alias so an agent that restarts can read its ports back.
//
// # Why a gateway namespace (and not host addresses or VRFs)
//
// Tenants may give two networks the same CIDR, so the host cannot hold the
// gateway address of each network on its bridge: two bridges with 10.0.0.1
// in one namespace give two connected routes for 10.0.0.0/24 and replies
// leave through whichever the kernel picks. A VRF per network would keep
// those routes apart, but this kind of host has no VRF driver
// (CONFIG_NET_VRF is not built and modules cannot be loaded), and a VRF
// would still put every tenant's addresses in the host's namespace. A
// namespace per network gives each network its own routing table and
// sockets for the price of one veth; it is also where a VPN gateway for the
// network belongs. The bridges carry no address, so the host never routes
// between networks or into one.
//
// # Filtering (nftables, tables inet weft and bridge weft)
//
// Bridged IPv4 traffic reaches the inet family's hooks through
// br_netfilter (built into this kernel; Open turns on
// net.bridge.bridge-nf-call-iptables in the host's namespace, which is on
// by default here). The bridge family was the other candidate, but this
// kernel lacks connection tracking for it (CONFIG_NF_CONNTRACK_BRIDGE) and
// the bridge name matches (CONFIG_NFT_BRIDGE_META), so rules there could
// only be stateless and per port; through br_netfilter they are stateful:
// replies of an allowed connection always pass, and a rule decides only on
// a connection's first packet. Per network the table
//
//   - gives the network's traffic a conntrack zone of its own (prerouting,
//     raw priority), so identical address pairs in two networks with
//     overlapping CIDRs never share a connection entry (zones have 16 bits:
//     VNIs equal modulo 65535 share one);
//   - drops anything the host would route into or out of the network's
//     bridge (no routing between networks even if someone gives a bridge an
//     address and turns on forwarding);
//   - runs the network's security rules in order on bridged packets, first
//     match wins, no match accepts (as within an Azure virtual network).
//
// A second table, bridge weft, drops IPv6 frames entering any port of a
// network: the overlay is IPv4 only, the rules above see only IPv4, and
// endpoints bring up IPv6 link-local addresses by themselves, which would
// otherwise reach every other endpoint past the rules.
//
// A packet between hosts is bridged on both, so both hosts' rules judge it;
// every host carrying a network is given the same rules.
//
// Every Apply rewrites both tables in one nftables transaction, so the
// rules never half-apply and never outlive the networks they belong to.
//
// A host whose iptables FORWARD policy drops
// (Docker's) drops bridged overlay traffic too, as br_netfilter makes it
// pass there; such hosts need an accept rule for the w*b bridges.
//
// # Use (the node agent)
//
//	h, err := overlay.Open(overlay.Config{Underlay: hostAddr, Logger: log})
//	// At start and on every change of the replicated state: every network
//	// with an instance here, its peers (the other hosts carrying it) and rules.
//	err = h.Apply(ctx, overlay.State{Networks: networks})
//	// A container or process instance, once its namespace exists:
//	port, err := h.Attach(ctx, overlay.Endpoint{ID: id, Network: vni,
//		Netns: "/proc/PID/ns/net", Address: addr /* 10.20.0.5/16 */, Gateway: gw})
//	// A VM, before QEMU starts: -netdev tap,id=n0,ifname=<port.Device>,
//	// script=no,downscript=no -device virtio-net-pci,netdev=n0,mac=<mac>
//	port, mac, err := h.AttachTap(ctx, overlay.Tap{ID: vmName, Network: vni})
//	// Stopped instances, and after a restart whatever Ports lists that no
//	// instance needs:
//	err = h.Detach(ctx, vni, id)
//	// The network's DNS server (package netdns) on its gateway address:
//	err = h.InNetwork(vni, func() (err error) {
//		pc, err = net.ListenPacket("udp4", gw.String()+":53")
//		return err
//	})
package overlay
