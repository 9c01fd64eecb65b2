package fabric

import (
	"slices"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/vpn"
)

// gateways returns the VPN gateways node runs (package vpn), with their
// private keys, and makes each one's network one of the node's networks,
// so that the node carries it even with no instance on it.
func (n *nodeNetworks) gateways(c *Controller, node string) []api.NodeVPN {
	var out []api.NodeVPN
	for key, g := range n.vpns {
		if g.Node != node {
			continue
		}
		r, seen := n.recs[key]
		if !seen {
			if got, _, ok := networks.Lookup(c.store, g.Tenant, g.Network); ok {
				r = &got
			}
			n.recs[key] = r
		}
		if r == nil {
			continue
		}
		var sealer vpn.Sealer
		if c.cfg.Sealer != nil {
			sealer = c.cfg.Sealer
		}
		private, err := g.OpenKey(sealer)
		if err != nil {
			c.log.Error("a VPN gateway left out of its node's assignments", "tenant", g.Tenant, "network", g.Network, "err", err)
			continue
		}
		if !n.used[key] {
			n.used[key] = true
			n.order = append(n.order, key)
		}
		out = append(out, api.NodeVPN{
			Tenant: g.Tenant, Network: g.Network, VNI: r.VNI, CIDR: r.CIDR, Address: g.Address,
			PrivateKey: private, ListenPort: g.ListenPort,
			PeerPublicKey: g.PeerPublicKey, PeerEndpoint: g.PeerEndpoint, PeerCIDRs: g.PeerCIDRs,
		})
	}
	slices.SortFunc(out, func(a, b api.NodeVPN) int {
		return strings.Compare(networks.Key(a.Tenant, a.Network), networks.Key(b.Tenant, b.Network))
	})
	return out
}
