package agent

import (
	"context"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
)

// vmRouting is what routeVMs knows of the VMs' routes: those each VM's
// guest took last (by instance), the VMs being told theirs now, and why
// the last telling failed (logged once, not every 30 s).
type vmRouting struct {
	mu     sync.Mutex
	given  map[string]vpnRoutes
	busy   map[string]bool
	failed map[string]string
}

// vmRoutesTimeout bounds one telling of a VM's routes.
const vmRoutesTimeout = 15 * time.Second

// routeVMs gives each running VM on a virtual network its network's VPN
// routes (netPlane.routesOf, the same as a container's). A VM configures
// its own interface, through its guest agent (driver.Router), so the
// agent cannot program its routes as it does a container's namespace
// (netPlane.reroute): it tells the guest, whenever they differ from those
// the guest took last. The driver gives a VM the routes of its start at
// boot (driver.NIC); this follows the changes (a gateway made or deleted
// while the VM runs), and puts right a VM adopted by a restarted agent or
// arrived by live migration, which the agent has told nothing yet. It
// runs after every assignments answer, which comes at least every 30 s: a
// telling that failed is tried again then.
func (a *Agent) routeVMs(ctx context.Context) {
	type vm struct {
		id  string
		r   driver.Router
		vni int
	}
	var running []vm
	a.mu.Lock()
	for id, in := range a.instances {
		r, ok := in.drv.(driver.Router)
		if !ok {
			continue
		}
		in.mu.Lock()
		if att := in.asg.Network; att != nil && in.state == api.StateRunning {
			running = append(running, vm{id, r, att.VNI})
		}
		in.mu.Unlock()
	}
	a.mu.Unlock()

	rt := &a.routing
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.given == nil {
		rt.given, rt.busy, rt.failed = map[string]vpnRoutes{}, map[string]bool{}, map[string]string{}
	}
	on := map[string]bool{}
	for _, v := range running {
		on[v.id] = true
		want := a.net.routesOf(v.vni)
		if had, ok := rt.given[v.id]; (ok && had.equal(want)) || rt.busy[v.id] {
			continue
		}
		rt.busy[v.id] = true
		go a.tellRoutes(ctx, v.id, v.r, want)
	}
	// A VM stopped (or restarting) boots with the routes of its start.
	for id := range rt.given {
		if !on[id] {
			delete(rt.given, id)
		}
	}
	for id := range rt.failed {
		if !on[id] {
			delete(rt.failed, id)
		}
	}
}

// tellRoutes gives VM id its routes and notes what it took.
func (a *Agent) tellRoutes(ctx context.Context, id string, r driver.Router, want vpnRoutes) {
	ctx, cancel := context.WithTimeout(ctx, vmRoutesTimeout)
	defer cancel()
	err := r.SetRoutes(ctx, id, want.to, want.via)
	a.figures.vmRoutes.WithLabelValues(result(err)).Inc()
	rt := &a.routing
	rt.mu.Lock()
	defer rt.mu.Unlock()
	delete(rt.busy, id)
	if err != nil {
		delete(rt.given, id)
		if rt.failed[id] != err.Error() {
			rt.failed[id] = err.Error()
			a.log.Warn("VM's VPN routes not set; trying again with the next assignments", "instance", id, "err", err)
		}
		return
	}
	delete(rt.failed, id)
	rt.given[id] = want
	a.log.Info("VM's VPN routes set", "instance", id, "routes", want.to, "via", want.via)
}
