// Package vpn is the control plane of the networks' VPN gateways (weft
// network vpn): one per network at most, kept in the replicated state
// with its WireGuard private key, sealed with the servers' key (Sealer),
// which the API never shows and only the node running the gateway is
// sent (in its assignments). The controller
// picks that node and moves the gateway off a node that is down or
// draining; the key, the listen port and the gateway's address on the
// network stay, so the peer on premises needs no change (it learns the
// gateway's new endpoint from the gateway's own packets).
package vpn

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/wireguard"
)

// KindVPNs holds the gateways (Record), keyed TENANT/NETWORK.
const KindVPNs = "vpns"

// FirstPort is the lowest UDP port a gateway listens on: WireGuard's
// usual one. Each gateway in the cluster gets its own, so any number of
// them can share a node and move between nodes.
const FirstPort = 51820

// Record is a gateway as the state keeps it.
type Record struct {
	api.VPN
	// SealedKey is the gateway's WireGuard private key sealed by the
	// servers' Sealer; PrivateKey is the key itself (base64) instead, for a
	// manager made without a Sealer (tests of other parts). OpenKey reads
	// either.
	SealedKey  string `json:"sealedKey,omitempty"`
	PrivateKey string `json:"privateKey,omitempty"`
}

// Sealer encrypts what only the servers may read (extensions.Sealer,
// whose key no state or snapshot holds), bound to where it belongs.
type Sealer interface {
	Seal(binding string, settings map[string]any) (string, error)
	Unseal(binding, sealed string) (map[string]any, error)
}

// keyBinding is where a gateway's sealed key belongs: a sealed key copied
// to another gateway does not open.
func keyBinding(tenant, network string) string {
	return tenant + "/" + networks.VPNService + "/" + network + "/gateway"
}

// OpenKey returns the gateway's private key (base64), unsealing it with s.
func (r Record) OpenKey(s Sealer) (string, error) {
	if r.SealedKey == "" {
		return r.PrivateKey, nil
	}
	if s == nil {
		return "", fmt.Errorf("vpn: the key of %s's gateway is sealed and this server has no sealer", r.Network)
	}
	m, err := s.Unseal(keyBinding(r.Tenant, r.Network), r.SealedKey)
	if err != nil {
		return "", fmt.Errorf("vpn: open the key of %s's gateway: %w", r.Network, err)
	}
	k, _ := m["privateKey"].(string)
	return k, nil
}

// Key is a gateway's key in KindVPNs: its network's.
func Key(tenant, network string) string { return networks.Key(tenant, network) }

// Lookup reads one gateway with its revision.
func Lookup(st state.Store, tenant, network string) (Record, uint64, bool) {
	return state.Lookup[Record](st, KindVPNs, Key(tenant, network))
}

// Entry is a gateway with its revision (for fingerprints of assignments).
type Entry struct {
	Record
	Rev uint64
}

// List reads a tenant's gateways (every tenant's with api.AllTenants).
func List(st state.Store, tenant string) []Entry {
	prefix := tenant + "/"
	if tenant == api.AllTenants {
		prefix = ""
	}
	var out []Entry
	for _, e := range st.List(KindVPNs, prefix) {
		var r Record
		if json.Unmarshal(e.Value, &r) == nil {
			out = append(out, Entry{r, e.Rev})
		}
	}
	return out
}

func (r Record) put() state.Op {
	data, _ := json.Marshal(r) // a Record always marshals
	return state.Op{Kind: KindVPNs, Key: Key(r.Tenant, r.Network), Value: data}
}

// View is the gateway as the API shows it: no private key, and the peer's
// configuration without the peer's.
func (r Record) View() api.VPN {
	v := r.VPN
	v.PeerConfig = PeerConfig(v, "")
	return v
}

// Node is what the manager needs to know of a node.
type Node struct {
	Name, Host, State string
}

// Cluster is what the manager asks of the fabric: the nodes, and the
// addresses a network's instances still hold (not to be given to a
// gateway).
type Cluster interface {
	Nodes(ctx context.Context) []api.Node
	BusyAddresses(tenant, network string) map[netip.Addr]bool
}

// Manager creates, lists, deletes and places gateways.
type Manager struct {
	st     state.Store
	cl     Cluster
	sealer Sealer // nil: keys kept unsealed
	log    *slog.Logger
	now    func() time.Time

	// mu serialises the writes, which pick the lowest free port and a
	// node by the gateways already placed.
	mu sync.Mutex
}

// New returns the manager; sealer seals the gateways' keys in the state
// (nil keeps them as they are: only for tests of other parts).
func New(st state.Store, cl Cluster, sealer Sealer, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{st: st, cl: cl, sealer: sealer, log: log, now: time.Now}
}

// Create makes network's gateway. An invalid request (400, naming the
// field), a network the tenant lacks (404), one with a gateway already or
// changed meanwhile (409), or no ready node (503) stores nothing. The
// answer's PeerConfig holds the peer's private key when Weft made it
// (req.PeerPublicKey empty); it is not kept.
func (m *Manager) Create(ctx context.Context, tenant, network string, req api.CreateVPN) (api.VPN, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	nrec, nrev, ok := networks.Lookup(m.st, tenant, network)
	if !ok {
		return api.VPN{}, api.Errorf(api.CodeNotFound, "no network named %s", network)
	}
	peerCIDRs, err := req.Check(nrec.CIDR)
	if err != nil {
		return api.VPN{}, err
	}
	if _, _, ok := Lookup(m.st, tenant, network); ok {
		return api.VPN{}, api.Errorf(api.CodeConflict, "network %s has a VPN gateway (weft network vpn delete %s first)", network, network)
	}
	gwKey, err := wireguard.GenerateKey()
	if err != nil {
		return api.VPN{}, err
	}
	var peerPrivate string
	peerPublic := req.PeerPublicKey
	if peerPublic == "" {
		k, err := wireguard.GenerateKey()
		if err != nil {
			return api.VPN{}, err
		}
		peerPrivate, peerPublic = k.String(), k.Public().String()
	}
	all := List(m.st, api.AllTenants)
	node, ok := m.pick(ctx, all, "")
	if !ok {
		return api.VPN{}, api.Errorf(api.CodeUnavailable, "no ready node to run the VPN gateway: try again when one is (weft nodes)")
	}
	if err := nrec.Assign(networks.VPNService, []networks.Want{{Member: networks.VPNMember}}, m.cl.BusyAddresses(tenant, network)); err != nil {
		return api.VPN{}, err
	}
	addr, _ := nrec.Address(networks.VPNMember)
	port := freePort(all)
	rec := Record{VPN: api.VPN{
		Tenant: tenant, Network: network, NetworkCIDR: nrec.CIDR,
		PeerEndpoint: req.PeerEndpoint, PeerCIDRs: peerCIDRs, PeerPublicKey: peerPublic,
		PublicKey: gwKey.Public().String(), ListenPort: port, Address: addr,
		Node: node.Name, Endpoint: net.JoinHostPort(node.Host, strconv.Itoa(port)),
		CreatedAt: m.now().UTC(),
	}}
	if m.sealer == nil {
		rec.PrivateKey = gwKey.String()
	} else if rec.SealedKey, err = m.sealer.Seal(keyBinding(tenant, network), map[string]any{"privateKey": gwKey.String()}); err != nil {
		return api.VPN{}, fmt.Errorf("vpn: seal the key of %s's gateway: %w", network, err)
	}
	_, err = m.st.Apply(ctx, []state.Op{
		{Kind: networks.KindNetworks, Key: networks.Key(tenant, network), Check: true, Rev: nrev},
		{Kind: KindVPNs, Key: Key(tenant, network), Check: true},
		nrec.Put(),
		rec.put(),
	})
	if errors.Is(err, state.ErrConflict) {
		return api.VPN{}, api.Errorf(api.CodeConflict, "network %s changed meanwhile; try again", network)
	} else if err != nil {
		return api.VPN{}, fmt.Errorf("vpn: create for %s: %w", network, err)
	}
	m.log.Info("vpn gateway created", "tenant", tenant, "network", network, "node", node.Name, "port", port)
	v := rec.VPN
	v.PeerConfig = PeerConfig(v, peerPrivate)
	return v, nil
}

// freePort is the lowest port from FirstPort no gateway listens on.
func freePort(all []Entry) int {
	used := map[int]bool{}
	for _, e := range all {
		used[e.ListenPort] = true
	}
	p := FirstPort
	for used[p] {
		p++
	}
	return p
}

// pick is the ready node, other than not, running the fewest gateways
// (then by name).
func (m *Manager) pick(ctx context.Context, all []Entry, not string) (Node, bool) {
	load := map[string]int{}
	for _, e := range all {
		load[e.Node]++
	}
	var ready []Node
	for _, n := range m.cl.Nodes(ctx) {
		if n.State == api.NodeReady && n.Name != not {
			ready = append(ready, Node{Name: n.Name, Host: n.Host, State: n.State})
		}
	}
	if len(ready) == 0 {
		return Node{}, false
	}
	return slices.MinFunc(ready, func(a, b Node) int {
		return cmp.Or(cmp.Compare(load[a.Name], load[b.Name]), cmp.Compare(a.Name, b.Name))
	}), true
}

// Get returns network's gateway.
func (m *Manager) Get(tenant, network string) (api.VPN, error) {
	r, _, ok := Lookup(m.st, tenant, network)
	if !ok {
		return api.VPN{}, m.missing(tenant, network)
	}
	return r.View(), nil
}

func (m *Manager) missing(tenant, network string) error {
	if _, _, ok := networks.Lookup(m.st, tenant, network); !ok {
		return api.Errorf(api.CodeNotFound, "no network named %s", network)
	}
	return api.Errorf(api.CodeNotFound, "network %s has no VPN gateway (weft network vpn create %s makes one)", network, network)
}

// List returns a tenant's gateways (every tenant's with api.AllTenants).
func (m *Manager) List(tenant string) []api.VPN {
	out := []api.VPN{}
	for _, e := range List(m.st, tenant) {
		out = append(out, e.View())
	}
	return out
}

// Delete removes network's gateway and lets its address go; its node
// stops it on its next assignments.
func (m *Manager) Delete(ctx context.Context, tenant, network string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, rev, ok := Lookup(m.st, tenant, network)
	if !ok {
		return m.missing(tenant, network)
	}
	ops := []state.Op{
		{Kind: KindVPNs, Key: Key(tenant, network), Check: true, Rev: rev},
		{Kind: KindVPNs, Key: Key(tenant, network), Delete: true},
	}
	if nrec, nrev, ok := networks.Lookup(m.st, tenant, network); ok && nrec.Release(networks.VPNService) {
		ops = append(ops, state.Op{Kind: networks.KindNetworks, Key: networks.Key(tenant, network), Check: true, Rev: nrev}, nrec.Put())
	}
	if _, err := m.st.Apply(ctx, ops); errors.Is(err, state.ErrConflict) {
		return api.Errorf(api.CodeConflict, "the VPN gateway of network %s changed meanwhile; try again", network)
	} else if err != nil {
		return fmt.Errorf("vpn: delete for %s: %w", network, err)
	}
	m.log.Info("vpn gateway deleted", "tenant", tenant, "network", network)
	return nil
}

// Run moves gateways off nodes that are not ready (down, draining or
// gone) to ready ones, checking every interval, until ctx ends; it
// returns nil then. Only the leader's writes land; on other servers the
// writes fail and are logged.
func (m *Manager) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.rehome(ctx)
		}
	}
}

// rehome moves each gateway whose node is not ready.
func (m *Manager) rehome(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := List(m.st, api.AllTenants)
	if len(all) == 0 {
		return // the nodes' view costs a pass over every instance
	}
	ready := map[string]bool{}
	for _, n := range m.cl.Nodes(ctx) {
		ready[n.Name] = n.State == api.NodeReady
	}
	for _, e := range all {
		if ready[e.Node] {
			continue
		}
		node, ok := m.pick(ctx, all, e.Node)
		if !ok {
			continue
		}
		r := e.Record
		from := r.Node
		r.Node, r.Endpoint = node.Name, net.JoinHostPort(node.Host, strconv.Itoa(r.ListenPort))
		_, err := m.st.Apply(ctx, []state.Op{{Kind: KindVPNs, Key: Key(r.Tenant, r.Network), Check: true, Rev: e.Rev}, r.put()})
		if err != nil {
			m.log.Warn("moving a VPN gateway", "tenant", r.Tenant, "network", r.Network, "from", from, "to", node.Name, "err", err)
			continue
		}
		m.log.Info("vpn gateway moved", "tenant", r.Tenant, "network", r.Network, "from", from, "to", node.Name)
	}
}
