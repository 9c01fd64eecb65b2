package api

import (
	"fmt"
	"net/netip"
	"time"
)

// Virtual networks are a tenant's private address spaces (weft network):
// roles of any runtime and VMs join one and get a stable private address
// from one of its subnets. Tenants' networks are apart, so their CIDRs
// may overlap.
//
//	POST   /v1/networks          CreateNetwork -> Network (201)
//	GET    /v1/networks          -> []Network
//	GET    /v1/networks/{name}   -> Network
//	DELETE /v1/networks/{name}   -> 204 (409 while a role or VM uses it)

// Network is one virtual network of a tenant.
type Network struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	CIDR   string `json:"cidr"` // e.g. 10.20.0.0/16
	// Subnets split the CIDR; a network created without any has one,
	// DefaultSubnet, that is the whole CIDR. Members take their address
	// from the subnet their role names, else the first.
	Subnets []Subnet `json:"subnets"`
	// VNI is the network's VXLAN network identifier on the overlay
	// between hosts, unique in the cluster, chosen at create.
	VNI int `json:"vni"`
	// Used counts the addresses held by instance slots and VMs.
	Used      int       `json:"used"`
	CreatedAt time.Time `json:"createdAt"`
}

// Subnet is a named part of a network's CIDR.
type Subnet struct {
	Name string `json:"name"`
	CIDR string `json:"cidr"`
}

// DefaultSubnet names the one subnet of a network created without any.
const DefaultSubnet = "default"

// CreateNetwork is the body of POST /v1/networks.
type CreateNetwork struct {
	Name    string   `json:"name"`
	CIDR    string   `json:"cidr"`
	Subnets []Subnet `json:"subnets,omitempty"`
}

// Prefix lengths a network and its subnets may have: a subnet needs room
// for its network and broadcast addresses, its gateway (.1) and at least
// one member.
const (
	MinNetworkBits = 8
	MaxSubnetBits  = 29
)

// Network checks the request and returns the network it makes (with
// DefaultSubnet when it names none), its CIDRs in canonical form. Errors
// name the field: a CIDR that is not one, or not IPv4, a subnet outside
// the network or overlapping another.
func (c CreateNetwork) Network(tenant string, now time.Time) (Network, error) {
	var p problems
	if !nameRE.MatchString(c.Name) {
		p.add("name", "%q is not a network name (lowercase letters, digits and dashes, starting with a letter, up to 40)", c.Name)
	}
	n := Network{Name: c.Name, Tenant: tenant, CreatedAt: now}
	network, err := parseCIDR(c.CIDR)
	if err != nil {
		p.add("cidr", "%v", err)
	} else {
		n.CIDR = network.String()
	}
	subnets := c.Subnets
	if len(subnets) == 0 && err == nil {
		subnets = []Subnet{{Name: DefaultSubnet, CIDR: network.String()}}
	}
	names := map[string]bool{}
	var seen []netip.Prefix
	for i, s := range subnets {
		at := fmt.Sprintf("subnets[%d]", i)
		if !nameRE.MatchString(s.Name) {
			p.add(at+".name", "%q is not a subnet name (lowercase letters, digits and dashes, starting with a letter, up to 40)", s.Name)
		} else if names[s.Name] {
			p.add(at+".name", "%q names another subnet too", s.Name)
		}
		names[s.Name] = true
		sub, err := parseCIDR(s.CIDR)
		switch {
		case err != nil:
			p.add(at+".cidr", "%v", err)
			continue
		case network.IsValid() && (sub.Bits() < network.Bits() || !network.Contains(sub.Addr())):
			p.add(at+".cidr", "%s is not inside the network's %s", sub, network)
			continue
		}
		for j, other := range seen {
			if other.IsValid() && other.Overlaps(sub) {
				p.add(at+".cidr", "%s overlaps subnets[%d] (%s)", sub, j, other)
			}
		}
		seen = append(seen, sub)
		n.Subnets = append(n.Subnets, Subnet{Name: s.Name, CIDR: sub.String()})
	}
	if err := p.err(); err != nil {
		return Network{}, err
	}
	return n, nil
}

// parseCIDR reads an IPv4 CIDR whose address is the network's own (no
// host bits), with a prefix of MinNetworkBits to MaxSubnetBits.
func parseCIDR(s string) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (e.g. 10.20.0.0/16)", s)
	case !pfx.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%s is not IPv4 (only IPv4 networks are served)", s)
	case pfx.Masked() != pfx:
		return netip.Prefix{}, fmt.Errorf("%s has host bits set: the network is %s", s, pfx.Masked())
	case pfx.Bits() < MinNetworkBits || pfx.Bits() > MaxSubnetBits:
		return netip.Prefix{}, fmt.Errorf("%s: the prefix length must be /%d to /%d", s, MinNetworkBits, MaxSubnetBits)
	}
	return pfx, nil
}

// Subnet returns the named subnet, or the first for "".
func (n Network) Subnet(name string) (Subnet, bool) {
	for _, s := range n.Subnets {
		if name == "" || s.Name == name {
			return s, true
		}
	}
	return Subnet{}, false
}

// Gateway is a subnet's gateway address: its first host address, which
// every host with members of the network gives its bridge. Members never
// get it, nor the subnet's network and broadcast addresses.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// NetworkAttachment is what a node needs to put an instance on its
// network (Assignment.Network): the network on the overlay, the subnet
// and the instance's address there.
type NetworkAttachment struct {
	Tenant  string `json:"tenant"`
	Network string `json:"network"`
	VNI     int    `json:"vni"`
	CIDR    string `json:"cidr"` // the whole network's
	Subnet  string `json:"subnet"`
	// SubnetCIDR is the subnet the instance is in, Gateway its gateway
	// (Gateway) and Address the instance's own (in SubnetCIDR, e.g.
	// 10.20.0.5; with the subnet's prefix: 10.20.0.5/24).
	SubnetCIDR string `json:"subnetCidr"`
	Gateway    string `json:"gateway"`
	Address    string `json:"address"`
}

// NodeNetwork is one network with members on a node
// (Assignments.Networks): where each of its members runs, for the node's
// overlay to reach the members on other hosts.
type NodeNetwork struct {
	Tenant  string          `json:"tenant"`
	Network string          `json:"network"`
	VNI     int             `json:"vni"`
	CIDR    string          `json:"cidr"`
	Subnets []Subnet        `json:"subnets"`
	Members []NetworkMember `json:"members"`
	// Rules are the network's security rules, by priority (NetworkRule).
	Rules []NetworkRule `json:"rules,omitempty"`
	// VPN is the network's VPN gateway, nil when it has none.
	VPN *NetworkVPN `json:"vpn,omitempty"`
}

// NetworkMember is one placed instance on a network: its address, and
// the node (and the node's host address, the overlay's underlay) it is
// on, with what names it (for the network's DNS: INSTANCE.ROLE.SERVICE,
// ROLE.SERVICE of the healthy ones, NAME.vm for a VM). An instance
// migrating live is listed at its source until the migration ends.
type NetworkMember struct {
	Address  string `json:"address"`
	Instance string `json:"instance"`
	Service  string `json:"service"`
	Role     string `json:"role"`
	VM       bool   `json:"vm,omitempty"` // a persistent VM (weft vm), named by its service
	Health   string `json:"health"`
	Node     string `json:"node"`
	Host     string `json:"host"`
}
