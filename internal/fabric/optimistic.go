package fabric

import (
	"context"
	"errors"
	"fmt"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// The API's writes of a service (deploy, scale, rollback, delete) decide
// without the controller's lock and write checked against what they read,
// so that they do not wait behind a reconcile pass's write (a batch of
// hundreds of instances and its fsync) nor behind each other. What a
// decision depends on is checked in the same batch (state.Op Check):
//
//   - the service's record, at the revision read, or its absence;
//   - the tenant's record (tenantUnchanged), for its quota and existence;
//   - the networks the service holds addresses on (networkOps);
//   - for a model that asks more of a tenant's quota, the tenant's quota
//     marker, and for one that publishes a port it did not, the ports
//     marker (markers.guards): other services' models count there too, and a
//     service created meanwhile has no revision to check, so every such
//     write also writes the marker, and two of them that each fit but
//     together do not cannot both land.
//
// Writers that still hold c.mu check the services they write too (a
// pass's write, auto-upgrades), or hold c.svcWrites alone while they read
// and write (a pass run again after a conflict), so that neither side
// overwrites the other.

// optimisticTries is how many times a write of a service is decided
// without the lock before the last try, under it.
const optimisticTries = 3

// serviceChange is what an API call decided to do to a service.
type serviceChange struct {
	ops    []state.Op    // the batch, its checks included; none: nothing to write
	rec    serviceRecord // the service as written (or as it is)
	events []api.Event   // told once the batch is written
}

// changeService decides with decide and writes what it decided. When
// something the decision read was written meanwhile (state.ErrConflict),
// it decides again, from what is now stored, up to optimisticTries times
// without c.mu and once more under it and alone among the API's writes
// of services (c.svcWrites); that one conflicting too (a network written
// meanwhile) returns conflict. A decision's error (a refused model) is
// returned as is.
func (c *Controller) changeService(ctx context.Context, conflict error, decide func() (serviceChange, error)) (api.Service, error) {
	for try := 0; ; try++ {
		locked := try == optimisticTries
		if locked {
			c.mu.Lock()
			c.svcWrites.Lock()
		}
		ch, err := decide()
		if err == nil && !locked {
			c.svcWrites.RLock()
			err = c.apply(ctx, ch.ops)
			c.svcWrites.RUnlock()
		} else if err == nil {
			err = c.apply(ctx, ch.ops)
		}
		if locked {
			c.svcWrites.Unlock()
			c.mu.Unlock()
		}
		if errors.Is(err, state.ErrConflict) {
			c.figures.retried.Inc()
			if locked {
				return api.Service{}, conflict
			}
			continue
		}
		if err != nil {
			return api.Service{}, err
		}
		for _, e := range ch.events {
			c.events.Add(e)
		}
		if len(ch.ops) > 0 {
			c.poke()
		}
		return c.serviceView(ch.rec), nil
	}
}

// lookupService is the tenant's service of that name with its revision
// (0 and false when there is none), and the check that it is still so.
func (c *Controller) lookupService(tenant, name string) (serviceRecord, state.Op, bool) {
	key := serviceKey(tenant, name)
	rec, rev, ok := state.Lookup[serviceRecord](c.store, state.KindServices, key)
	return rec, state.Op{Kind: state.KindServices, Key: key, Check: true, Rev: rev}, ok
}

// tenantToWrite is the tenant with its quota, and the check that it is
// still so when the decision is written (tenantUnchanged), read first.
func (c *Controller) tenantToWrite(name string) (api.Tenant, []state.Op, error) {
	checks, cerr := c.tenantUnchanged(name)
	t, err := c.tenant(name)
	if err != nil {
		return t, nil, err
	}
	if cerr != nil { // made between the two reads: read both again
		return t, nil, fmt.Errorf("%w: tenant %s was created meanwhile", state.ErrConflict, name)
	}
	return t, checks, nil
}

// Markers in state.KindMeta for what spans services (see above).
const portsMarker = "fabric/ports"

func quotaMarker(tenant string) string { return "fabric/quota/" + tenant }

// markers are the revisions of the markers a decision may depend on,
// read before what they guard.
type markers struct {
	ports, quota uint64
}

func (c *Controller) readMarkers(tenant string) markers {
	p, _ := c.store.Get(state.KindMeta, portsMarker)
	q, _ := c.store.Get(state.KindMeta, quotaMarker(tenant))
	return markers{ports: p.Rev, quota: q.Rev}
}

// guards are the markers' checks and writes for replacing the service's
// model old (zero for a new service) by new in tenant t.
func (m markers) guards(t api.Tenant, old, new api.ServiceSpec) []state.Op {
	var ops []state.Op
	bump := func(key string, rev uint64) {
		ops = append(ops, state.Op{Kind: state.KindMeta, Key: key, Check: true, Rev: rev}, put(state.KindMeta, key, struct{}{}))
	}
	if newPorts(old, new) {
		bump(portsMarker, m.ports)
	}
	if t.Quota != (api.Quota{}) && maxUsage(charge(old), charge(new)) != charge(old) {
		bump(quotaMarker(t.Name), m.quota)
	}
	return ops
}

// newPorts reports whether new publishes a port old does not.
func newPorts(old, new api.ServiceSpec) bool {
	had := map[int]bool{}
	for _, r := range old.Roles {
		if published(r) {
			for _, ep := range r.Endpoints {
				had[ep.Port] = true
			}
		}
	}
	for _, r := range new.Roles {
		if published(r) {
			for _, ep := range r.Endpoints {
				if !had[ep.Port] {
					return true
				}
			}
		}
	}
	return false
}
