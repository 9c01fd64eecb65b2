// Package networks is the control plane of virtual networks (weft
// network): a tenant's networks in the replicated state, keyed
// TENANT/NAME (names are unique in a tenant; tenants' CIDRs may overlap),
// each with a VXLAN network identifier unique in the cluster, and the
// address management (Record.Assign) that gives every instance slot of a
// role on a network, and every VM, a stable private address.
//
// A network's record holds its members' addresses, so every change of
// them is one write of one key with a revision check: the fabric assigns
// them in the batch that stores the service model asking for them, and a
// network is deleted only with a check that nothing took an address or
// named it meanwhile. The nodes' data plane (bridges, VXLAN) is programmed
// from the assignments the fabric builds from these records.
package networks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/tenants"
)

// Kinds in the state.
const (
	// KindNetworks holds the networks (Record), keyed TENANT/NAME.
	KindNetworks = "networks"
	// KindVNIs claims each network's VNI, keyed by the VNI (vniKey), so
	// that two networks made at once never share one.
	KindVNIs = "vnis"
)

// VNIs handed out: VXLAN's are 24 bits, and 0 is left unused.
const (
	FirstVNI = 1
	LastVNI  = 1<<24 - 1
)

// Record is a network as the state keeps it.
type Record struct {
	api.Network
	// Members maps each member (Member) to its address.
	Members map[string]string `json:"members,omitempty"`
}

// Key is a network's key in KindNetworks.
func Key(tenant, name string) string { return tenant + "/" + name }

func vniKey(vni int) string { return fmt.Sprintf("%08d", vni) }

// Lookup reads one of a tenant's networks with its revision.
func Lookup(st state.Store, tenant, name string) (Record, uint64, bool) {
	return state.Lookup[Record](st, KindNetworks, Key(tenant, name))
}

// List reads a tenant's networks (every tenant's with api.AllTenants),
// by tenant and name.
func List(st state.Store, tenant string) []Record {
	prefix := tenant + "/"
	if tenant == api.AllTenants {
		prefix = ""
	}
	var out []Record
	for _, e := range st.List(KindNetworks, prefix) {
		var r Record
		if json.Unmarshal(e.Value, &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// View is the network as the API shows it.
func (r Record) View() api.Network {
	n := r.Network
	n.Used = len(r.Members)
	return n
}

// Put is the batch operation that stores r.
func (r Record) Put() state.Op {
	data, _ := json.Marshal(r) // a Record always marshals
	return state.Op{Kind: KindNetworks, Key: Key(r.Tenant, r.Name), Value: data}
}

// Users names what uses a tenant's network besides its members'
// addresses: the fabric's services and VMs whose roles name it, and
// instances still on it.
type Users interface {
	NetworkUsers(tenant, network string) []string
}

// Manager creates, lists and deletes networks.
type Manager struct {
	st    state.Store
	users Users
	now   func() time.Time

	// mu serialises creates, which pick the lowest free VNI: two at once
	// would pick the same and one would fail its check.
	mu sync.Mutex
}

// New returns the manager; users says what uses a network (the fabric).
func New(st state.Store, users Users) *Manager {
	return &Manager{st: st, users: users, now: time.Now}
}

// Create makes a tenant's network. A request that is invalid (named
// field by field), names a network the tenant has, or comes for a tenant
// deleted meanwhile stores nothing.
func (m *Manager) Create(ctx context.Context, tenant string, req api.CreateNetwork) (api.Network, error) {
	n, err := req.Network(tenant, m.now().UTC())
	if err != nil {
		return api.Network{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, _, ok := Lookup(m.st, tenant, n.Name); ok {
		return api.Network{}, api.Errorf(api.CodeConflict, "name: a network named %s exists", n.Name)
	}
	ops, err := tenantCheck(m.st, tenant)
	if err != nil {
		return api.Network{}, err
	}
	if n.VNI, err = m.freeVNI(); err != nil {
		return api.Network{}, err
	}
	rec := Record{Network: n}
	ops = append(ops,
		state.Op{Kind: KindNetworks, Key: Key(tenant, n.Name), Check: true},
		state.Op{Kind: KindVNIs, Key: vniKey(n.VNI), Check: true},
		rec.Put(),
		state.Op{Kind: KindVNIs, Key: vniKey(n.VNI), Value: []byte(strconv.Quote(Key(tenant, n.Name)))},
	)
	if _, err := m.st.Apply(ctx, ops); errors.Is(err, state.ErrConflict) {
		return api.Network{}, api.Errorf(api.CodeConflict, "network %s, or tenant %s, changed meanwhile; try again", n.Name, tenant)
	} else if err != nil {
		return api.Network{}, fmt.Errorf("networks: create %s: %w", n.Name, err)
	}
	return rec.View(), nil
}

// tenantCheck is a check that the tenant exists as read now, so that no
// network is stored for a tenant deleted meanwhile. The default tenant
// always exists.
func tenantCheck(st state.Store, tenant string) ([]state.Op, error) {
	if tenant == api.DefaultTenant {
		return nil, nil
	}
	e, ok := st.Get(tenants.KindTenants, tenant)
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "no tenant named %s", tenant)
	}
	return []state.Op{{Kind: tenants.KindTenants, Key: tenant, Check: true, Rev: e.Rev}}, nil
}

// freeVNI is the lowest VNI no network has.
func (m *Manager) freeVNI() (int, error) {
	next := FirstVNI
	for _, e := range m.st.List(KindVNIs, "") { // sorted: keys are zero-padded
		vni, err := strconv.Atoi(e.Key)
		if err != nil || vni < next {
			continue
		}
		if vni > next {
			break
		}
		next++
	}
	if next > LastVNI {
		return 0, api.Errorf(api.CodeConflict, "the cluster has %d networks, as many as VXLAN can tell apart", LastVNI)
	}
	return next, nil
}

// Get returns one of a tenant's networks.
func (m *Manager) Get(tenant, name string) (api.Network, error) {
	r, _, ok := Lookup(m.st, tenant, name)
	if !ok {
		return api.Network{}, api.Errorf(api.CodeNotFound, "no network named %s", name)
	}
	return r.View(), nil
}

// List returns a tenant's networks (every tenant's with api.AllTenants).
func (m *Manager) List(tenant string) []api.Network {
	out := []api.Network{}
	for _, r := range List(m.st, tenant) {
		out = append(out, r.View())
	}
	return out
}

// Owned counts a tenant's networks.
func (m *Manager) Owned(tenant string) int { return len(m.st.List(KindNetworks, tenant+"/")) }

// Delete deletes one of a tenant's networks, refused with
// api.CodeConflict, naming them, while services, VMs or instances use it.
func (m *Manager) Delete(ctx context.Context, tenant, name string) error {
	r, rev, ok := Lookup(m.st, tenant, name)
	if !ok {
		return api.Errorf(api.CodeNotFound, "no network named %s", name)
	}
	users := m.users.NetworkUsers(tenant, name)
	if _, ok := r.Members[VPNMember]; ok {
		users = append(users, "its VPN gateway (weft network vpn delete "+name+")")
	}
	if len(users) == 0 && len(r.Members) > 0 {
		users = append(users, fmt.Sprintf("%d addresses", len(r.Members)))
	}
	if len(users) > 0 {
		return api.Errorf(api.CodeConflict, "network %s is in use by %s: delete or move them first", name, strings.Join(users, ", "))
	}
	// The check on the record's revision fails if a deploy took an
	// address or named the network since it was read: the fabric writes
	// the record in every batch that stores a model naming it.
	_, err := m.st.Apply(ctx, []state.Op{
		{Kind: KindNetworks, Key: Key(tenant, name), Check: true, Rev: rev},
		{Kind: KindNetworks, Key: Key(tenant, name), Delete: true},
		{Kind: KindVNIs, Key: vniKey(r.VNI), Delete: true},
		{Kind: KindRules, Key: Key(tenant, name), Delete: true},
	})
	if errors.Is(err, state.ErrConflict) {
		return api.Errorf(api.CodeConflict, "network %s changed meanwhile (a deploy onto it?); try again", name)
	}
	if err != nil {
		return fmt.Errorf("networks: delete %s: %w", name, err)
	}
	return nil
}
