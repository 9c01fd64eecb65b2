package fabric

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric/placement"
	"github.com/weftcloud/weft/internal/state"
)

// serviceRecord is what the store keeps for a service: the API object plus
// the history rollback needs.
type serviceRecord struct {
	api.Service
	// Revisions are earlier specs, newest last, at most maxRevisions.
	Revisions []revision `json:"revisions,omitempty"`
	// KeepDrives keeps the drives of the service's slots when it is
	// deleted (weft service delete --keep-drives).
	KeepDrives bool `json:"keepDrives,omitempty"`
	// DeclinedImages are image digests a rollback left (autoupgrade.go):
	// the fabric does not upgrade the service onto them again.
	DeclinedImages []string `json:"declinedImages,omitempty"`
}

type revision struct {
	Version int             `json:"version"`
	Spec    api.ServiceSpec `json:"spec"`
}

const maxRevisions = 10

// instanceRecord is the stored instance: the API object plus what only the
// fabric needs.
type instanceRecord struct {
	api.Instance
	// Spec is the role template this instance runs: an instance keeps its
	// own template until an upgrade replaces it, so a restart after a crash
	// starts the same version.
	Spec api.RoleSpec `json:"spec"`
	// Template is the hash of the role template the instance runs; the
	// instance is outdated when its role's current template hashes otherwise.
	Template string `json:"template"`
	// Replaces names the instance this one takes over from (node drain:
	// the replacement starts first, the old one stops once it is healthy).
	Replaces string `json:"replaces,omitempty"`
	// Evicting marks an instance that leaves its node once its replacement is healthy.
	Evicting bool `json:"evicting,omitempty"`
	// Rebalancing marks an Evicting instance that leaves to spread its
	// role over more fault domains (rebalance), not because its node drains.
	Rebalancing bool `json:"rebalancing,omitempty"`
	// MoveFailed is when a rebalancing move of this instance was given up;
	// its role tries no other move for a while (rebalanceRetry).
	MoveFailed time.Time `json:"moveFailed,omitzero"`
	// DrainStarted is when the instance was taken out of the load balancer.
	DrainStarted time.Time `json:"drainStarted,omitzero"`
	// WasHealthy: the instance has been healthy at least once, so a role
	// waiting for it is degraded rather than still starting.
	WasHealthy bool `json:"wasHealthy,omitempty"`

	// svcKey and grpKey are serviceKey and group, made once when the
	// record is decoded or made (derive): a pass asks for them for each
	// of 20,000 instances several times.
	svcKey, grpKey string
	// readRev is the store revision a pass read the record at; 0 for one
	// it made (pass.checks).
	readRev uint64
}

// derive fills the fields made from the others (decoded.decode calls it).
func (r *instanceRecord) derive() {
	r.svcKey = serviceKey(r.Tenant, r.Service)
	r.grpKey = groupKey(r.Tenant, r.Service, r.Role)
}

// live reports whether the instance still holds its slot: it runs or is
// meant to run, and is not on its way out.
func (r *instanceRecord) live() bool {
	return r.Desired == api.DesiredRunning && !r.Draining && !r.Evicting
}

// migrationTo is the node a live migration moves the instance to, or "".
func (r *instanceRecord) migrationTo() string {
	if r.Migration == nil {
		return ""
	}
	return r.Migration.To
}

func (r *instanceRecord) healthy() bool {
	return r.State == api.StateRunning && r.Health == api.HealthHealthy
}

// nodeRecord is the stored node. Heartbeat times are not stored: they change
// every interval and live in memory on the controller (see Controller.seen).
type nodeRecord struct {
	api.Node
	// APIToken is what servers present to the node's agent (its own API:
	// logs, exec); the agent chose it when it registered. Never shown.
	APIToken string `json:"apiToken,omitempty"`
}

// templateHash identifies a role's template: everything but the instance
// count, and the settings of a role whose settings are live (they reach
// running instances without replacing them), and its extensions (handed
// to running instances too, see handExtensions).
func templateHash(role api.RoleSpec) string {
	role = withoutExtensions(role)
	role.Instances = 0
	if role.LiveSettings {
		role.Settings = nil
	}
	data, _ := json.Marshal(role)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

func put(kind, key string, v any) state.Op {
	data, err := json.Marshal(v)
	if err != nil {
		// Only our own record types are stored; they always marshal.
		panic(fmt.Sprintf("fabric: marshal %s/%s: %v", kind, key, err))
	}
	return state.Op{Kind: kind, Key: key, Value: data}
}

func del(kind, key string) state.Op { return state.Op{Kind: kind, Key: key, Delete: true} }

func get[T any](s state.Store, kind, key string) (T, bool) {
	var v T
	e, ok := s.Get(kind, key)
	if !ok {
		return v, false
	}
	if err := unmarshal(e.Value, &v); err != nil {
		return v, false
	}
	return v, true
}

func list[T any](s state.Store, kind, prefix string) []T {
	entries := s.List(kind, prefix)
	out := make([]T, 0, len(entries))
	for _, e := range entries {
		var v T
		if err := unmarshal(e.Value, &v); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// compareInstances is the order instances are listed and visited in:
// service, role, slot, then oldest first. (Not cmp.Or: it would compare
// every field of every pair, and passes sort 20,000 instances.)
func compareInstances(a, b *instanceRecord) int {
	if c := cmp.Compare(a.Tenant, b.Tenant); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Service, b.Service); c != 0 {
		return c
	}
	return compareInService(a, b)
}

// compareInService is compareInstances for two instances of one service.
func compareInService(a, b *instanceRecord) int {
	if c := cmp.Compare(a.Role, b.Role); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Slot, b.Slot); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Keys in the state: a service is "tenant/name" (names are unique within a
// tenant), and its instances "tenant/name/id", so that a tenant's services
// and a service's instances are each one prefix.
func serviceKey(tenant, name string) string         { return tenant + "/" + name }
func instanceKey(tenant, service, id string) string { return serviceKey(tenant, service) + "/" + id }

func (r *serviceRecord) key() string  { return serviceKey(r.Tenant, r.Name) }
func (r *instanceRecord) key() string { return instanceKey(r.Tenant, r.Service, r.ID) }

func (r *instanceRecord) serviceKey() string {
	if r.svcKey != "" {
		return r.svcKey
	}
	return serviceKey(r.Tenant, r.Service)
}

// group is the placement group of an instance: its role, which placement
// spreads over fault domains.
func (r *instanceRecord) group() string {
	if r.grpKey != "" {
		return r.grpKey
	}
	return groupKey(r.Tenant, r.Service, r.Role)
}

func groupKey(tenant, service, role string) string { return serviceKey(tenant, service) + "/" + role }

// request asks placement for a node for the instance, not one of avoid.
func (r *instanceRecord) request(avoid []string) placement.Request {
	return placement.Request{
		Group: r.group(), Runtime: r.Spec.Runtime,
		CPU: r.Spec.Size.CPU, Memory: int64(r.Spec.Size.Memory), Avoid: avoid,
	}
}

// ofService reports whether the instance belongs to svc.
func (r *instanceRecord) ofService(svc *serviceRecord) bool {
	return r.Tenant == svc.Tenant && r.Service == svc.Name
}
