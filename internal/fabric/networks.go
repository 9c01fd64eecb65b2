package fabric

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/vpn"
)

// networkOps checks the networks and subnets spec's roles name (the
// tenant's own) and returns the writes that give each of the service's
// slots on a network its address (networks.Record.Assign) and let go of
// the addresses of slots that are gone or moved to another network. They
// go in the batch that stores spec, so a model is never stored without
// its addresses; each network they name is written with a check of its
// revision, so a network deleted meanwhile fails the batch. A network or
// subnet that does not exist is api.CodeInvalid, a full subnet
// api.CodeConflict; both before anything is written. c.mu must be held.
func (c *Controller) networkOps(tenant string, spec api.ServiceSpec) ([]state.Op, error) {
	named := map[string]bool{}
	var problems []string
	for i, r := range spec.Roles {
		if r.Network == "" {
			continue
		}
		rec, _, ok := networks.Lookup(c.store, tenant, r.Network)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("roles[%d].network: no network named %s (weft network create %s --cidr CIDR makes one)", i, r.Network, r.Network))
		case !slices.Contains(c.cfg.NetworkRuntimes, r.Runtime):
			problems = append(problems, fmt.Sprintf("roles[%d].network: %s instances cannot join a virtual network yet: only %s roles do (docs/networks.md)",
				i, r.Runtime, strings.Join(c.cfg.NetworkRuntimes, " and ")))
		case r.Subnet != "" && !slices.ContainsFunc(rec.Subnets, func(s api.Subnet) bool { return s.Name == r.Subnet }):
			problems = append(problems, fmt.Sprintf("roles[%d].subnet: network %s has no subnet %s (weft network show %s)", i, r.Network, r.Subnet, r.Network))
		}
		named[r.Network] = true
	}
	if len(problems) > 0 {
		return nil, api.Errorf(api.CodeInvalid, "%s", strings.Join(problems, "; "))
	}
	// Networks the service holds addresses on but no longer names.
	for _, rec := range networks.List(c.store, tenant) {
		for m := range rec.Members {
			if strings.HasPrefix(m, spec.Name+"/") {
				named[rec.Name] = true
			}
		}
	}
	var ops []state.Op
	for _, name := range slices.Sorted(maps.Keys(named)) {
		rec, rev, _ := networks.Lookup(c.store, tenant, name)
		if err := rec.Assign(spec.Name, wants(spec, name), c.busyAddresses(tenant, name)); err != nil {
			return nil, err
		}
		ops = append(ops, state.Op{Kind: networks.KindNetworks, Key: networks.Key(tenant, name), Check: true, Rev: rev}, rec.Put())
	}
	return ops, nil
}

// wants lists the slots of spec's roles on network that hold an address:
// every slot of the role's count, and a VM's one slot even while it is
// stopped (no instance), so that it starts again with its address.
func wants(spec api.ServiceSpec, network string) []networks.Want {
	var out []networks.Want
	for _, r := range spec.Roles {
		if r.Network != network {
			continue
		}
		n := r.Instances
		if spec.IsVM() {
			n = max(n, 1)
		}
		for slot := range n {
			out = append(out, networks.Want{Member: networks.Member(spec.Name, r.Name, slot), Subnet: r.Subnet})
		}
	}
	return out
}

// busyAddresses are the addresses a tenant's instances hold on a network:
// an instance whose slot let its address go (scaled away, moved to
// another network) keeps it until it has stopped, and no other slot gets
// it meanwhile.
func (c *Controller) busyAddresses(tenant, network string) map[netip.Addr]bool {
	busy := map[netip.Addr]bool{}
	for _, in := range list[instanceRecord](c.store, state.KindInstances, tenant+"/") {
		if in.Spec.Network != network {
			continue
		}
		if a, err := netip.ParseAddr(in.PrivateAddress); err == nil {
			busy[a] = true
		}
	}
	return busy
}

// BusyAddresses are the addresses a tenant's instances hold on a network
// (busyAddresses), for the VPN gateway's address to avoid them.
func (c *Controller) BusyAddresses(tenant, network string) map[netip.Addr]bool {
	return c.busyAddresses(tenant, network)
}

// CheckNetworks refuses a model whose networks or subnets do not exist in
// the tenant, or do not have the addresses it needs, as Deploy would,
// writing nothing: callers that make something before they deploy (a
// VM's disks) ask it first.
func (c *Controller) CheckNetworks(tenant string, spec api.ServiceSpec) error {
	_, err := c.networkOps(tenant, spec)
	return err
}

// SlotAddress is the address a slot holds on a network, "" when none.
func (c *Controller) SlotAddress(tenant, network, service, role string, slot int) string {
	rec, _, _ := networks.Lookup(c.store, tenant, network)
	a, _ := rec.Address(networks.Member(service, role, slot))
	return a
}

// NetworkUsers names the tenant's services and VMs whose roles are on a
// network, and instances still on it from an earlier model.
func (c *Controller) NetworkUsers(tenant, network string) []string {
	var users []string
	seen := map[string]bool{}
	for _, svc := range list[serviceRecord](c.store, state.KindServices, tenant+"/") {
		for _, r := range svc.Spec.Roles {
			if r.Network != network {
				continue
			}
			u := "service " + svc.Name + " (role " + r.Name + ")"
			if svc.Spec.IsVM() {
				u = "VM " + svc.Name
			}
			seen[svc.Name] = true
			users = append(users, u)
		}
	}
	for _, in := range list[instanceRecord](c.store, state.KindInstances, tenant+"/") {
		if in.Spec.Network == network && !seen[in.Service] {
			users = append(users, "instance "+in.ID)
		}
	}
	return users
}

// passNetworks are the network records a pass read (nil: none of that
// name), and those it changed.
type passNetworks struct {
	recs  map[string]*networks.Record // by networks.Key
	revs  map[string]uint64
	dirty map[string]bool
}

// network loads a network for the pass, once.
func (p *pass) network(tenant, name string) (*networks.Record, bool) {
	if p.nets.recs == nil {
		p.nets = passNetworks{recs: map[string]*networks.Record{}, revs: map[string]uint64{}, dirty: map[string]bool{}}
	}
	key := networks.Key(tenant, name)
	if r, ok := p.nets.recs[key]; ok {
		return r, r != nil
	}
	rec, rev, ok := networks.Lookup(p.c.store, tenant, name)
	if !ok {
		p.nets.recs[key] = nil
		return nil, false
	}
	p.nets.recs[key], p.nets.revs[key] = &rec, rev
	return &rec, true
}

// slotAddress is the address a new instance of role in slot takes: its
// slot's on the role's network.
func (p *pass) slotAddress(svc *serviceRecord, role api.RoleSpec, slot int) string {
	if role.Network == "" {
		return ""
	}
	rec, ok := p.network(svc.Tenant, role.Network)
	if !ok {
		return ""
	}
	a, _ := rec.Address(networks.Member(svc.Name, role.Name, slot))
	return a
}

// releaseAddresses lets go of the addresses of a service that is gone.
func (p *pass) releaseAddresses(svc *serviceRecord) {
	for _, rec := range networks.List(p.c.store, svc.Tenant) {
		r, _ := p.network(svc.Tenant, rec.Name)
		if r != nil && r.Release(svc.Name) {
			p.nets.dirty[networks.Key(svc.Tenant, rec.Name)] = true
		}
	}
}

// networkOps writes the networks the pass changed, each with a check of
// the revision it read.
func (p *pass) networkOps() []state.Op {
	var ops []state.Op
	for key := range p.nets.dirty {
		r := p.nets.recs[key]
		ops = append(ops, state.Op{Kind: networks.KindNetworks, Key: key, Check: true, Rev: p.nets.revs[key]}, r.Put())
	}
	return ops
}

// nodeNetworks builds the network side of a node's assignments: the
// attachment of each of its instances on a network, and each such
// network with every placed member in the cluster.
type nodeNetworks struct {
	recs  map[string]*networks.Record  // by networks.Key; nil: none
	rules map[string][]api.NetworkRule // by networks.Key, read with recs
	used  map[string]bool              // networks the node's instances are on
	order []string
	// vpns are the cluster's VPN gateways by their network's key.
	vpns map[string]*vpn.Record
}

// attach returns the attachment of an instance on its role's network, nil
// for one on none (or on a network deleted under it, which cannot be: a
// network in use is not deleted).
func (n *nodeNetworks) attach(c *Controller, rec instanceRecord) *api.NetworkAttachment {
	if rec.Spec.Network == "" || rec.PrivateAddress == "" {
		return nil
	}
	key := networks.Key(rec.Tenant, rec.Spec.Network)
	r, seen := n.recs[key]
	if !seen {
		if got, _, ok := networks.Lookup(c.store, rec.Tenant, rec.Spec.Network); ok {
			r = &got
			n.rules[key], _ = networks.Rules(c.store, rec.Tenant, rec.Spec.Network)
		}
		n.recs[key] = r
	}
	if r == nil {
		return nil
	}
	sub, ok := r.Subnet(rec.Spec.Subnet)
	if !ok {
		return nil
	}
	if !n.used[key] {
		n.used[key] = true
		n.order = append(n.order, key)
	}
	return &api.NetworkAttachment{
		Tenant: r.Tenant, Network: r.Name, VNI: r.VNI, CIDR: r.CIDR, Subnet: sub.Name, SubnetCIDR: sub.CIDR,
		Gateway: api.Gateway(netip.MustParsePrefix(sub.CIDR)).String(), Address: rec.PrivateAddress,
	}
}

// networks lists the networks attach was asked about, each with its
// placed members among insts (an instance migrating live at its source).
func (n *nodeNetworks) networks(insts []*instanceRecord, nodes map[string]nodeRecord) []api.NodeNetwork {
	var out []api.NodeNetwork
	slices.Sort(n.order)
	for _, key := range n.order {
		r := n.recs[key]
		nn := api.NodeNetwork{Tenant: r.Tenant, Network: r.Name, VNI: r.VNI, CIDR: r.CIDR, Subnets: r.Subnets, Members: []api.NetworkMember{},
			Rules: n.rules[key]}
		if g := n.vpns[key]; g != nil {
			nn.VPN = &api.NetworkVPN{Node: g.Node, Host: nodes[g.Node].Host, Address: g.Address, PeerCIDRs: g.PeerCIDRs}
		}
		for _, in := range insts {
			if in.Tenant != r.Tenant || in.Spec.Network != r.Name || in.Node == "" || in.PrivateAddress == "" {
				continue
			}
			nn.Members = append(nn.Members, api.NetworkMember{
				Address: in.PrivateAddress, Instance: in.ID, Service: in.Service, Role: in.Role,
				VM:     in.Spec.Runtime == api.RuntimeVM && in.Spec.Persistence == api.Persistent && in.Role == api.VMRole,
				Health: in.Health, Node: in.Node, Host: nodes[in.Node].Host,
			})
		}
		out = append(out, nn)
	}
	return out
}
