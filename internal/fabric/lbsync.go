package fabric

import (
	"context"
	"net"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/state"
)

// RunLB keeps the load balancer in step with the state until ctx ends. It
// runs on every server of a cluster, leader or not: each one's balancer
// serves the endpoints from its copy of the replicated state.
func (c *Controller) RunLB(ctx context.Context) {
	if c.lb == nil {
		return
	}
	var idx uint64
	for {
		began := time.Now()
		c.syncLB()
		took := time.Since(began)
		next, err := c.store.Wait(ctx, idx)
		if err != nil {
			return
		}
		idx = next
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(began.Add((1 + lbSyncSpacing) * took))):
		}
	}
}

// A sync reads every instance, and while writes keep coming (a deploy, a
// heal, each batch of heartbeats) a sync followed each of them. After a
// sync that took d the next waits at least lbSyncSpacing × d, so syncs
// take at most a fifth of the time of the server they run on, and the
// load balancer lags the state by at most about five syncs' time (~50 ms
// at 20,000 instances). A drain does not wait: startDrain syncs itself.
const lbSyncSpacing = 4

// syncLB gives the load balancer the endpoints the store describes now.
func (c *Controller) syncLB() {
	c.lbMu.Lock()
	defer c.lbMu.Unlock()
	defer func(began time.Time) { c.figures.lbSync.Observe(time.Since(began).Seconds()) }(time.Now())
	eps := c.endpoints()
	if reflect.DeepEqual(eps, c.lbLast) {
		return
	}
	if err := c.lb.Update(eps); err != nil {
		c.events.Add(api.Event{Type: "lb.error", Level: "error", Message: err.Error()})
	}
	c.lbLast = eps
}

// endpoints lists every published endpoint with the instances that may take
// traffic: running, healthy, not draining, on a node that is not down.
func (c *Controller) endpoints() []lb.Endpoint {
	nodes := map[string]*nodeRecord{}
	nodeRecs, _ := c.nodeCache.list(c.store, state.KindNodes)
	for _, n := range nodeRecs {
		nodes[n.Name] = n
	}
	insts, _ := c.instCache.list(c.store, state.KindInstances) // shared: read only
	// Each role's instances, gathered once: every instance checked for
	// each endpoint cost 200 web roles of 100 instances 4 million checks
	// a sync, and a sync follows every write.
	var byRole map[string][]*instanceRecord
	var out []lb.Endpoint
	svcs, _ := c.svcCache.list(c.store, state.KindServices) // shared: read only
	for _, svc := range svcs {
		if svc.Status == api.ServiceDeleting {
			continue
		}
		for _, role := range svc.Spec.Roles {
			if !published(role) {
				continue
			}
			if byRole == nil {
				byRole = map[string][]*instanceRecord{}
				for _, in := range insts {
					byRole[in.group()] = append(byRole[in.group()], in)
				}
			}
			for _, ep := range role.Endpoints {
				e := lb.Endpoint{Key: svc.key() + "/" + role.Name + "/" + ep.Name, Protocol: ep.Protocol, Port: ep.Port}
				for _, in := range byRole[groupKey(svc.Tenant, svc.Name, role.Name)] {
					n, ok := nodes[in.Node]
					port := in.Ports[ep.Name]
					if !ok || n.State == api.NodeDown ||
						in.Desired != api.DesiredRunning || in.Draining || !in.healthy() || port == 0 {
						continue
					}
					e.Backends = append(e.Backends, lb.Backend{ID: in.ID, Addr: net.JoinHostPort(n.Host, strconv.Itoa(port))})
				}
				sort.Slice(e.Backends, func(i, j int) bool { return e.Backends[i].ID < e.Backends[j].ID })
				out = append(out, e)
			}
		}
	}
	return out
}

// startDrain takes an instance out of the load balancer, waits until its
// requests finished (or the drain timeout), and then tells its node to stop it.
func (c *Controller) startDrain(ctx context.Context, id string) {
	c.drainMu.Lock()
	if c.draining[id] {
		c.drainMu.Unlock()
		return
	}
	c.draining[id] = true
	c.drainMu.Unlock()
	go func() {
		defer func() {
			c.drainMu.Lock()
			delete(c.draining, id)
			c.drainMu.Unlock()
		}()
		if c.lb != nil {
			c.syncLB() // the store says draining; make sure the LB knows before waiting
			dctx, cancel := context.WithTimeout(ctx, c.cfg.DrainTimeout)
			_ = c.lb.Drain(dctx, id) // a timeout stops the instance anyway
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		rec, ok := c.findInstance(api.AllTenants, id)
		if !ok || rec.Desired != api.DesiredRunning {
			return
		}
		rec.Desired = api.DesiredStopped
		rec.UpdatedAt = c.now()
		if err := c.apply(ctx, []state.Op{put(state.KindInstances, rec.key(), rec)}); err != nil {
			c.log.Error("stop drained instance", "instance", id, "err", err)
		}
	}()
}
