package fabric

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric/placement"
	"github.com/weftcloud/weft/internal/state"
)

// A live migration moves a running vm instance, keeping its ID, to another
// node. The controller records it on the instance; the destination node's
// assignments then hold the instance marked Incoming, and its agent starts
// a copy waiting for the VM and reports where it listens; the source's
// assignment then carries that address, and its agent sends the VM there
// and reports the outcome, which moves the instance to the destination.
// A migration that does not finish in migrationTimeout, or whose source or
// destination goes down, is abandoned: the VM keeps running at the source.
const migrationTimeout = 5 * time.Minute

// Migrate starts a live migration of instance id to node to, or to the
// node the placement rules prefer when to is empty.
func (c *Controller) Migrate(ctx context.Context, id, to string) (api.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.newPass()
	in, ok := p.insts[id]
	if !ok {
		return api.Instance{}, api.Errorf(api.CodeNotFound, "no instance %s", id)
	}
	if in.Spec.Runtime != api.RuntimeVM {
		return api.Instance{}, api.Errorf(api.CodeConflict, "instance %s runs on the %s runtime: only VMs migrate live", id, in.Spec.Runtime)
	}
	if in.Migration != nil {
		return api.Instance{}, api.Errorf(api.CodeConflict, "instance %s is already migrating to %s", id, in.Migration.To)
	}
	if in.Node == "" || !in.live() || in.State != api.StateRunning {
		return api.Instance{}, api.Errorf(api.CodeConflict, "instance %s is not running (%s)", id, in.State)
	}
	if to == in.Node {
		return api.Instance{}, api.Errorf(api.CodeInvalid, "instance %s already runs on %s", id, to)
	}
	dest, err := p.migrationTarget(in, to)
	if err != nil {
		return api.Instance{}, err
	}
	p.startMigration(in, dest)
	if err := c.apply(ctx, p.batch(false)); err != nil {
		return api.Instance{}, err
	}
	p.tell()
	c.poke()
	return in.Instance, nil
}

// newPass loads the state a reconcile pass works on, with its placement
// view.
func (c *Controller) newPass() *pass {
	p := &pass{
		c: c, now: c.now(),
		nodes: map[string]*nodeRecord{}, nodeDirty: map[string]bool{},
		svcDirty: map[string]bool{}, svcGone: map[string]bool{},
		insts: map[string]*instanceRecord{}, dirty: map[string]bool{}, gone: map[string]*instanceRecord{},
		asked: map[string]bool{},
	}
	nodes, nodeRevs := c.nodeCache.list(c.store, state.KindNodes)
	insts, instRevs := c.instCache.list(c.store, state.KindInstances)
	services := c.store.List(state.KindServices, "")
	p.revs = make(map[string]uint64, len(nodes)+len(services))
	for i, n := range nodes {
		n := *n // nodeRecord holds nothing a pass changes in place
		p.nodes[n.Name] = &n
		p.revs[state.KindNodes+"/"+n.Name] = nodeRevs[i]
	}
	p.bySvc = map[string][]*instanceRecord{}
	var run []*instanceRecord                    // of one service: the store lists them by key, service first
	clones := make([]instanceRecord, len(insts)) // one allocation, not 20,000
	for i, in := range insts {
		in.cloneInto(&clones[i])
		in := &clones[i]
		in.readRev = instRevs[i]
		p.insts[in.ID] = in
		if len(run) > 0 && run[0].serviceKey() != in.serviceKey() {
			p.bySvc[run[0].serviceKey()] = run
			run = nil
		}
		run = append(run, in)
	}
	if len(run) > 0 {
		p.bySvc[run[0].serviceKey()] = run
	}
	for _, list := range p.bySvc {
		slices.SortFunc(list, compareInService)
	}
	for _, e := range services {
		var s serviceRecord
		if err := json.Unmarshal(e.Value, &s); err == nil {
			p.services = append(p.services, &s)
			p.revs[state.KindServices+"/"+e.Key] = e.Rev
		}
	}
	return p
}

// migrationTarget picks the destination: to when given (refused with the
// reason when it cannot take the instance), else the best other node.
func (p *pass) migrationTarget(in *instanceRecord, to string) (string, error) {
	p.notePlacements() // as the instances are now, not as the pass found them
	p.buildCluster()
	avoid := []string{in.Node}
	if to != "" {
		n, ok := p.nodes[to]
		if !ok {
			return "", api.Errorf(api.CodeNotFound, "no node %s", to)
		}
		if !hasRuntime(n.Runtimes, in.Spec.Runtime) {
			return "", api.Errorf(api.CodeConflict, "node %s has no %s runtime", to, in.Spec.Runtime)
		}
		for name := range p.nodes {
			if name != to {
				avoid = append(avoid, name)
			}
		}
	}
	node, err := p.cluster.Place(in.request(avoid))
	var ue *placement.UnplaceableError
	if errors.As(err, &ue) {
		if to != "" {
			return "", api.Errorf(api.CodeConflict, "node %s cannot take instance %s: %s", to, in.ID, ue.Reason)
		}
		return "", api.Errorf(api.CodeConflict, "no other node can take instance %s: %s", in.ID, ue.Reason)
	}
	return node, err
}

func hasRuntime(runtimes []string, want string) bool {
	for _, r := range runtimes {
		if r == want {
			return true
		}
	}
	return false
}

func (p *pass) startMigration(in *instanceRecord, to string) {
	b := make([]byte, 6)
	rand.Read(b)
	in.Migration = &api.Migration{ID: fmt.Sprintf("%x", b), From: in.Node, To: to, Started: p.now}
	p.touch(in)
	p.event(api.Event{Type: "instance.migrating", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
		Message: fmt.Sprintf("instance %s migrating live from %s to %s", in.ID, in.Node, to)})
}

// abandonMigrations gives up migrations that cannot finish; the VM keeps
// running where it was.
func (p *pass) abandonMigrations() {
	for _, in := range p.insts {
		m := in.Migration
		if m == nil {
			continue
		}
		reason := ""
		switch dest := p.nodes[m.To]; {
		case dest == nil || dest.State == api.NodeDown:
			reason = "the destination " + m.To + " is down"
		case in.Node != m.From || !in.live():
			reason = "the instance stopped or moved"
		case p.now.Sub(m.Started) > migrationTimeout:
			reason = fmt.Sprintf("not done after %s", migrationTimeout)
		}
		if reason == "" {
			p.wakeAt(m.Started.Add(migrationTimeout))
		} else {
			p.endMigration(in, api.MigrationResult{ID: m.ID, Error: reason})
		}
	}
}

// endMigration records how a migration ended and, when it succeeded,
// moves the instance to its destination.
func (p *pass) endMigration(in *instanceRecord, res api.MigrationResult) {
	m := in.Migration
	res.From, res.To, res.Ended = m.From, m.To, p.now
	in.LastMigration = &res
	in.Migration = nil
	p.touch(in)
	if res.Error != "" {
		p.event(api.Event{Type: "instance.migration-failed", Level: "warn", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
			Message: fmt.Sprintf("migration of instance %s to %s failed: %s; it keeps running on %s", in.ID, m.To, res.Error, in.Node)})
		return
	}
	in.Node = m.To
	if dest := p.nodes[m.To]; dest != nil {
		in.FaultDomain = dest.FaultDomain
		in.Ports = maps.Clone(m.Ports)
		in.Address = instanceAddress(*in, dest.Host)
	}
	p.event(api.Event{Type: "instance.migrated", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: m.To,
		Message: fmt.Sprintf("instance %s migrated live from %s to %s in %s (downtime %s)", in.ID, m.From, m.To,
			res.Total.Round(time.Millisecond), res.Downtime.Round(time.Millisecond))})
}

// migrationReport folds what a node says about a migrating instance into
// its record: the destination's listening address, or the source's
// outcome. It reports whether the status was about the migration.
func (p *pass) migrationReport(in *instanceRecord, node string, st api.InstanceStatus) bool {
	m := in.Migration
	if m == nil {
		return false
	}
	switch {
	case node == m.To && in.Node != node:
		if st.MigrationID != m.ID {
			return true // a stale copy of an earlier attempt
		}
		if st.State == api.StateFailed {
			p.endMigration(in, api.MigrationResult{ID: m.ID, Error: "the destination failed: " + st.Message})
		} else if st.Incoming != "" && m.URI == "" {
			m.URI = st.Incoming
			m.Ports = maps.Clone(st.Ports)
			p.touch(in)
		}
		return true
	case node == in.Node && st.Migrated != nil && st.Migrated.ID == m.ID:
		p.endMigration(in, *st.Migrated)
		return true
	}
	return false
}

// migrateRetry is how long a drain waits after a failed migration before
// it tries again.
const migrateRetry = 30 * time.Second

// migrateOff moves a persistent VM off a draining node by live migration:
// its guest keeps running, where any other instance would be replaced.
func (p *pass) migrateOff(in *instanceRecord) {
	if in.Migration != nil || in.State != api.StateRunning {
		return
	}
	if last := in.LastMigration; last != nil && last.Error != "" && p.now.Sub(last.Ended) < migrateRetry {
		p.wakeAt(last.Ended.Add(migrateRetry))
		return
	}
	dest, err := p.migrationTarget(in, "")
	if err != nil {
		if in.Message != err.Error() {
			in.Message = err.Error()
			p.touch(in)
		}
		return
	}
	p.startMigration(in, dest)
}
