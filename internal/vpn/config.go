package vpn

import (
	"fmt"
	"net"
	"strings"

	"github.com/weftcloud/weft/api"
)

// keepalive is the PersistentKeepalive of both ends, in seconds: the
// gateway keeps the tunnel up from its side, and a gateway that moved to
// another node is found again by the peer within that time.
const keepalive = 25

// keptAway stands in the peer configuration for the peer's private key
// after the create, which alone returns it.
const keptAway = "<the private key printed by weft network vpn create; Weft does not keep it>"

// PeerConfig is the configuration of the peer on premises for v, in
// wg-quick's format: the peer's key (peerPrivate, or keptAway when ""),
// the port it listens on (v.PeerEndpoint's), and the gateway as its peer,
// with the virtual network as the addresses routed to it.
func PeerConfig(v api.VPN, peerPrivate string) string {
	if peerPrivate == "" {
		peerPrivate = keptAway
	}
	_, port, _ := net.SplitHostPort(v.PeerEndpoint)
	var b strings.Builder
	fmt.Fprintf(&b, "# WireGuard on premises for the VPN gateway of Weft network %s (tenant %s).\n", v.Network, v.Tenant)
	fmt.Fprintf(&b, "# Apply with wg-quick up (add Address = an address of yours in %s to reach the\n", strings.Join(v.PeerCIDRs, ", "))
	fmt.Fprintf(&b, "# network from this machine itself), and route %s to this machine on premises.\n", v.NetworkCIDR)
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "PrivateKey = %s\n", peerPrivate)
	fmt.Fprintf(&b, "ListenPort = %s\n", port)
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "# the gateway, on node %s\n", v.Node)
	fmt.Fprintf(&b, "PublicKey = %s\n", v.PublicKey)
	fmt.Fprintf(&b, "Endpoint = %s\n", v.Endpoint)
	fmt.Fprintf(&b, "AllowedIPs = %s\n", v.NetworkCIDR)
	fmt.Fprintf(&b, "PersistentKeepalive = %d\n", keepalive)
	return b.String()
}
