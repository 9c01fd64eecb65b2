package fabric

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric/placement"
	"github.com/weftcloud/weft/internal/state"
)

// pass is one reconcile pass: a snapshot of the state that the steps change
// in memory, written back as one batch at the end.
type pass struct {
	c   *Controller
	now time.Time

	nodes      map[string]*nodeRecord
	nodeDirty  map[string]bool
	services   []*serviceRecord
	svcDirty   map[string]bool
	svcGone    map[string]bool
	insts      map[string]*instanceRecord   // by ID; gone ones removed
	sorted     []*instanceRecord            // insts in instance order; nil until first asked for
	bySvc      map[string][]*instanceRecord // sorted by service key; nil until first asked for
	dirty      map[string]bool
	gone       map[string]*instanceRecord
	cluster    *placement.Cluster  // placementView; nil until first asked for
	placements []placedAt          // notePlacements
	byDomain   map[string][]string // domainNodes; nil until first asked for

	drains []string        // instances to drain from the load balancer once the batch is written
	asked  map[string]bool // instances a step wanted stopped in this pass (see noticeGiven)

	unplaced map[string]int // placement.Why* -> instances this pass could not place

	// wake is when the first of the timers the pass found running ends
	// (wakeAt); zero when none.
	wake time.Time

	// revs are the revisions the pass read of nodes and services, by
	// kind/key (checks); instances carry theirs (readRev).
	revs map[string]uint64
	// downed are the nodes the pass declares down; wave, what the
	// node-down wave guard becomes (nil: the pass did not check the nodes).
	downed []string
	wave   *waveGuard
	// What the pass tells once its batch is written (tell).
	events        []api.Event
	placed, moves int

	nets passNetworks
}

// reconcile runs one pass. The pass reads and decides without the
// controller's lock, so that heartbeats and API calls do not wait behind
// it; it then writes under the lock, checked against the revisions it
// read (pass.checks). When something it depended on was written in the
// meantime, it runs again under the lock, as every pass once did, still
// checked against the API's writes of services, which take no lock; a
// second conflict runs it once more with those waiting too
// (Controller.svcWrites), which cannot conflict.
func (c *Controller) reconcile(ctx context.Context) error {
	start := time.Now()
	p := c.newPass()
	p.run()
	return c.commitPass(ctx, p, p.batch(true), start)
}

// commitPass writes batch, what pass p decided without the lock
// (reconcile), or runs the pass again under the lock when what it read
// has changed since. The events of the pass written are told once the
// lock is let go.
func (c *Controller) commitPass(ctx context.Context, p *pass, batch []state.Op, start time.Time) (err error) {
	defer func() { c.figures.observePass(start, err, p.unplaced) }()
	c.mu.Lock()
	locked := time.Now()
	defer func() {
		c.figures.locked.Observe(time.Since(locked).Seconds())
		c.mu.Unlock()
		if err == nil {
			p.tell()
		}
	}()
	err = p.stillSilent()
	if err == nil {
		err = c.apply(ctx, batch)
	}
	if errors.Is(err, state.ErrConflict) {
		c.figures.conflicts.Inc()
		p = c.newPass()
		p.run()
		err = c.apply(ctx, p.batch(true)) // the API's writes of services take no mu
	}
	if errors.Is(err, state.ErrConflict) {
		c.figures.conflicts.Inc()
		c.svcWrites.Lock()
		p = c.newPass()
		p.run()
		err = c.apply(ctx, p.batch(false))
		c.svcWrites.Unlock()
	}
	if err != nil {
		return fmt.Errorf("fabric: write reconcile pass: %w", err)
	}
	c.wake = p.wake
	c.nodesChecked(p)
	for _, svc := range p.services {
		if p.svcGone[svc.key()] {
			c.deleteDrives(ctx, svc)
		}
	}
	for _, id := range p.drains {
		c.startDrain(ctx, id)
	}
	// Drains the controller did not start in this process (it restarted
	// mid-upgrade) are picked up here.
	for _, in := range p.insts {
		if in.Draining && in.Desired == api.DesiredRunning {
			c.startDrain(ctx, in.ID)
		}
	}
	return nil
}

// run decides everything the pass changes, in memory.
func (p *pass) run() {
	p.checkNodes()
	p.dropFinished()
	p.abandonMigrations()
	p.notePlacements()
	for _, svc := range p.services {
		p.service(svc)
	}
	p.lifecycle()
	p.placePending()
	p.rebalance()
	p.expireDrains()
}

// batch is what the pass writes. Checked, it is written only if nothing
// the pass's changes depend on was written since the pass read it
// (checks), else the write fails with state.ErrConflict and changes
// nothing.
func (p *pass) batch(checked bool) []state.Op {
	ops := p.ops()
	if checked {
		ops = append(p.checks(ops), ops...)
	}
	return ops
}

// stillSilent fails with state.ErrConflict when a node the pass declares
// down was heard from since the pass began.
func (p *pass) stillSilent() error {
	for _, node := range p.downed {
		if seen, ok := p.c.lastSeen(node); !ok || seen.silence(p.c.now()) <= seen.ttl {
			return fmt.Errorf("%w: node %s was heard from during the pass", state.ErrConflict, node)
		}
	}
	return nil
}

// tell adds the pass's events to the log and its counts to the figures,
// once its batch is written (logging 20,000 placements takes a while: not
// under the lock).
func (p *pass) tell() {
	for _, e := range p.events {
		p.c.events.Add(e)
	}
	p.c.figures.placed.Add(float64(p.placed))
	p.c.figures.moves.Add(float64(p.moves))
	p.events, p.placed, p.moves = nil, 0, 0
}

// checks are the preconditions of a pass's batch read without the lock:
// every node, service and instance it writes or deletes is still at the
// revision it read, and so are the services whose instances it writes and
// the nodes it places instances on (a deploy, a scale, a delete or a
// drain written meanwhile changes what the pass should have done). What
// the pass only read and left alone may have moved (an instance's status
// from a heartbeat): the pass then ran as if just before that write.
func (p *pass) checks(ops []state.Op) []state.Op {
	var out []state.Op
	seen := map[string]bool{}
	check := func(kind, key string, rev uint64) {
		if k := kind + "/" + key; !seen[k] {
			seen[k] = true
			out = append(out, state.Op{Kind: kind, Key: key, Check: true, Rev: rev})
		}
	}
	for _, op := range ops {
		if op.Kind == state.KindNodes || op.Kind == state.KindServices {
			check(op.Kind, op.Key, p.revs[op.Kind+"/"+op.Key])
		}
	}
	instance := func(in *instanceRecord) {
		if in.readRev != 0 {
			check(state.KindInstances, in.key(), in.readRev)
		}
		svc := in.serviceKey()
		check(state.KindServices, svc, p.revs[state.KindServices+"/"+svc])
		for _, n := range []string{in.Node, in.migrationTo()} {
			if n != "" {
				check(state.KindNodes, n, p.revs[state.KindNodes+"/"+n])
			}
		}
	}
	for id := range p.dirty {
		if in, ok := p.insts[id]; ok {
			instance(in)
		}
	}
	for _, in := range p.gone {
		instance(in)
	}
	return out
}

func (p *pass) ops() []state.Op {
	var ops []state.Op
	for name := range p.nodeDirty {
		ops = append(ops, put(state.KindNodes, name, p.nodes[name]))
	}
	for _, s := range p.services {
		switch {
		case p.svcGone[s.key()]:
			ops = append(ops, del(state.KindServices, s.key()))
		case p.svcDirty[s.key()]:
			ops = append(ops, put(state.KindServices, s.key(), s))
		}
	}
	for id := range p.dirty {
		if in, ok := p.insts[id]; ok {
			ops = append(ops, put(state.KindInstances, in.key(), in))
		}
	}
	for _, in := range p.gone {
		ops = append(ops, del(state.KindInstances, in.key()))
	}
	return append(ops, p.networkOps()...)
}

// wakeAt notes a timer of the pass (a timeout, a retry, a stop notice) that
// ends at t: a pass is due then, though nothing is written (passGate).
func (p *pass) wakeAt(t time.Time) {
	if !t.Before(p.now) && (p.wake.IsZero() || t.Before(p.wake)) {
		p.wake = t
	}
}

// event is told once the pass's batch is written (tell).
func (p *pass) event(e api.Event) { p.events = append(p.events, e) }

func (p *pass) touch(in *instanceRecord) {
	in.UpdatedAt = p.now
	p.dirty[in.ID] = true
}

func (p *pass) remove(in *instanceRecord) {
	p.unindex(in)
	delete(p.insts, in.ID)
	delete(p.dirty, in.ID)
	p.gone[in.ID] = in
}

// checkNodes declares down the nodes whose heartbeats stopped, as many at
// once as the node-down wave guard lets it (limitWave).
func (p *pass) checkNodes() {
	var w waveCount
	for name, n := range p.nodes {
		if n.State == api.NodeDown {
			w.down(p.recentlyDown(name))
			continue
		}
		seen, ok := p.c.lastSeen(name)
		if !ok {
			p.c.markFirstSeen(name, p.now) // first sight in this process: two TTLs
			w.nodes++
			continue
		}
		w.ready(name, seen, p.now)
	}
	for _, s := range p.limitWave(w) {
		n := p.nodes[s.name]
		n.State = api.NodeDown
		p.nodeDirty[s.name] = true
		p.downed = append(p.downed, s.name)
		p.event(api.Event{Type: "node.down", Level: "warn", Node: s.name,
			Message: fmt.Sprintf("node %s missed heartbeats for %s: declared down, its instances are being replaced", s.name, s.silence.Round(time.Millisecond))})
	}
}

// fenced says whether a down node has had time to stop its persistent
// instances itself (persistentGrace).
func (p *pass) fenced(node string) bool {
	seen, ok := p.c.lastSeen(node)
	if !ok {
		// Declared down by an earlier leader: give it the whole grace from
		// now, since its agent may have been heard from until recently.
		p.c.markSeen(node, p.now)
		return false
	}
	return seen.silence(p.now) > persistentGrace(seen.ttl)
}

// dropFinished forgets instances that are gone: stopped ones, and those
// whose node is down or unknown (they are recreated elsewhere; persistent
// ones once their node has had time to stop them).
func (p *pass) dropFinished() {
	for _, in := range p.sortedInstances() {
		node := p.nodes[in.Node]
		switch {
		case in.Node != "" && (node == nil || node.State == api.NodeDown):
			if node != nil && in.Spec.RunsOnce() && !p.fenced(in.Node) {
				continue // its old node may still run it: wait for it to fence
			}
			if in.Desired == api.DesiredRunning && !in.Draining {
				p.event(api.Event{Type: "instance.lost", Level: "warn", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
					Message: fmt.Sprintf("instance %s lost with node %s; replacing it", in.ID, in.Node)})
			}
			p.remove(in)
		case in.Desired == api.DesiredStopped && (in.Node == "" || in.State == api.StateStopped || in.State == api.StateFailed):
			p.event(api.Event{Type: "instance.stopped", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
				Message: fmt.Sprintf("instance %s stopped", in.ID)})
			p.remove(in)
		}
	}
}

// sortedInstances returns the live set in instance order: the services'
// lists (instancesOf) joined in service order. Each service's instances
// are sorted on their own, so that joining them again after an instance
// came or went is a copy, not a sort of the whole set (with 20,000
// instances, sorting them was a fifth of every pass).
func (p *pass) sortedInstances() []*instanceRecord {
	if p.sorted == nil {
		keys := make([]string, 0, len(p.bySvc))
		for k, list := range p.bySvc {
			if len(list) > 0 {
				keys = append(keys, k)
			}
		}
		slices.SortFunc(keys, func(a, b string) int {
			x, y := p.bySvc[a][0], p.bySvc[b][0]
			return cmp.Or(cmp.Compare(x.Tenant, y.Tenant), cmp.Compare(x.Service, y.Service))
		})
		p.sorted = make([]*instanceRecord, 0, len(p.insts))
		for _, k := range keys {
			p.sorted = append(p.sorted, p.bySvc[k]...)
		}
	}
	return p.sorted
}

// instancesOf returns the service's live instances in instance order.
func (p *pass) instancesOf(svc *serviceRecord) []*instanceRecord {
	return slices.Clone(p.bySvc[svc.key()])
}

// index and unindex keep the instances by service in order as instances
// come and go; the whole set is joined again only when asked for
// (sortedInstances). The
// lists are replaced, never changed in place: callers may be ranging over
// them.
func (p *pass) index(in *instanceRecord) {
	p.sorted = nil
	k := in.serviceKey()
	list := p.bySvc[k]
	i, _ := slices.BinarySearchFunc(list, in, compareInService)
	p.bySvc[k] = slices.Insert(slices.Clip(list), i, in)
}

func (p *pass) unindex(in *instanceRecord) {
	p.sorted = nil
	k := in.serviceKey()
	p.bySvc[k] = slices.DeleteFunc(slices.Clone(p.bySvc[k]), func(x *instanceRecord) bool { return x == in })
}

// The placement view (pass.cluster) is made of the instances as the pass
// found them once nodes were checked and finished instances dropped: the
// few fields placement needs are noted then (notePlacements), and the view
// is built from them when the pass first places an instance
// (placementView). Most passes place none (a heartbeat's news, a timer),
// and building the view hashes every instance into maps: a quarter of a
// pass over 20,000 instances.

// placedAt is what placement needs of an instance.
type placedAt struct {
	node, to, group string // its node, a live migration's destination, its role
	cpu, memory     float64
	live            bool
}

// notePlacements notes what the placement view is built from.
func (p *pass) notePlacements() {
	p.placements = make([]placedAt, 0, len(p.insts))
	for _, in := range p.insts {
		p.placements = append(p.placements, placedAt{node: in.Node, to: in.migrationTo(), group: in.group(),
			cpu: in.Spec.Size.CPU, memory: float64(in.Spec.Size.Memory), live: in.live()})
	}
}

// placementView returns the placement view, built on first use from the
// placements noted.
func (p *pass) placementView() *placement.Cluster {
	if p.cluster == nil {
		p.buildCluster()
	}
	return p.cluster
}

// buildCluster makes the placement view from the placements noted: ready
// nodes with their free capacity and how many instances of each role they
// hold.
func (p *pass) buildCluster() {
	used := map[string][2]float64{}
	use := func(node string, at placedAt) {
		if node != "" {
			u := used[node]
			u[0] += at.cpu
			u[1] += at.memory
			used[node] = u
		}
	}
	for _, at := range p.placements {
		use(at.node, at)
		use(at.to, at) // held on both until it ends
	}
	var nodes []placement.Node
	for _, n := range p.nodes {
		u := used[n.Name]
		nodes = append(nodes, placement.Node{
			Name: n.Name, FaultDomain: n.FaultDomain, Runtimes: n.Runtimes,
			FreeCPU: n.Capacity.CPU - u[0], FreeMemory: int64(n.Capacity.Memory) - int64(u[1]),
			Schedulable: n.State == api.NodeReady,
		})
	}
	p.cluster = placement.NewCluster(nodes)
	for _, at := range p.placements {
		if at.node != "" && at.live {
			p.cluster.Count(at.group, at.node)
		}
	}
}

// service converges one service: instance counts, upgrades, evictions, deletion.
func (p *pass) service(svc *serviceRecord) {
	insts := p.instancesOf(svc)
	if svc.Status == api.ServiceDeleting {
		for _, in := range insts {
			p.stop(in)
		}
		if len(p.instancesOf(svc)) == 0 {
			p.svcGone[svc.key()] = true
			p.releaseAddresses(svc)
			p.event(api.Event{Type: "service.deleted", Tenant: svc.Tenant, Service: svc.Name, Message: "service " + svc.Name + " deleted"})
		}
		return
	}
	for _, in := range insts {
		if roleIndex(svc.Spec, in.Role) < 0 {
			p.stop(in) // the role was removed from the model
		}
	}
	for _, role := range svc.Spec.Roles {
		occupied := map[int]bool{}
		for _, in := range insts {
			if in.Role != role.Name {
				continue
			}
			if in.Slot >= role.Instances {
				p.stop(in)
				continue
			}
			occupied[in.Slot] = true
		}
		for slot := 0; slot < role.Instances; slot++ {
			if !occupied[slot] {
				p.create(svc, role, slot, "")
			}
		}
	}
	p.evict(svc)
	p.upgrade(svc)
}

// create adds a new instance of role in slot and tries to place it.
func (p *pass) create(svc *serviceRecord, role api.RoleSpec, slot int, replaces string) *instanceRecord {
	in := p.newInstance(svc, role, slot, replaces)
	p.place(in)
	return in
}

// newInstance adds a new, unplaced instance of role in slot.
func (p *pass) newInstance(svc *serviceRecord, role api.RoleSpec, slot int, replaces string) *instanceRecord {
	in := &instanceRecord{
		Instance: api.Instance{
			ID: p.newInstanceID(svc.Name, role.Name, slot), Tenant: svc.Tenant, Service: svc.Name, Role: role.Name,
			Slot: slot, UpdateDomain: slot % upgradeDomains(svc.Spec), Version: svc.Version,
			Desired: api.DesiredRunning, State: api.StatePending, Health: api.HealthUnknown, CreatedAt: p.now,
			PrivateAddress: p.slotAddress(svc, role, slot),
		},
		Spec: role, Template: templateHash(role), Replaces: replaces,
	}
	in.derive()
	p.insts[in.ID] = in
	p.index(in)
	p.touch(in)
	return in
}

func upgradeDomains(spec api.ServiceSpec) int {
	if spec.UpgradeDomains > 0 {
		return spec.UpgradeDomains
	}
	return api.DefaultUpgradeDomains
}

// newInstanceID names a new instance. IDs are unique across tenants (the
// nodes, the logs and the routes name instances by ID alone), and two
// tenants may both have a service of the same name: draw again on a
// collision.
func (p *pass) newInstanceID(service, role string, slot int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	for {
		b := make([]byte, 4)
		rand.Read(b)
		for i := range b {
			b[i] = letters[int(b[i])%len(letters)]
		}
		id := fmt.Sprintf("%s-%s-%d-%s", service, role, slot, b)
		if _, taken := p.insts[id]; !taken && p.gone[id] == nil {
			return id
		}
	}
}

// place puts a pending instance on a node, or records why it cannot.
func (p *pass) place(in *instanceRecord) {
	var avoid []string
	if old, ok := p.insts[in.Replaces]; ok {
		avoid = []string{old.Node}
	}
	node, err := p.placementView().Place(in.request(avoid))
	if err != nil {
		reason, kind := err.Error(), "other"
		var ue *placement.UnplaceableError
		if errors.As(err, &ue) {
			reason, kind = ue.Reason, ue.Kind
		}
		if p.unplaced == nil {
			p.unplaced = map[string]int{}
		}
		p.unplaced[kind]++
		if in.Message != reason {
			in.Message = reason
			p.touch(in)
			p.event(api.Event{Type: "instance.pending", Level: "warn", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID,
				Message: fmt.Sprintf("instance %s cannot be placed: %s", in.ID, reason)})
		}
		return
	}
	p.assign(in, node)
}

// assign puts an instance on node, which the placement view has already
// counted it on.
func (p *pass) assign(in *instanceRecord, node string) {
	in.Node = node
	in.FaultDomain = p.nodes[node].FaultDomain
	in.Message = ""
	p.touch(in)
	p.placed++
	p.event(api.Event{Type: "instance.placed", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: node,
		Message: fmt.Sprintf("instance %s placed on %s (fault domain %s, update domain %d)", in.ID, node, in.FaultDomain, in.UpdateDomain)})
}

func (p *pass) placePending() {
	for _, in := range p.sortedInstances() {
		if in.Node == "" && in.Desired == api.DesiredRunning {
			p.place(in)
		}
	}
}

// stop takes an instance out of service: out of the load balancer first
// (the drain runs after the batch is written), then stopped by its node.
func (p *pass) stop(in *instanceRecord) {
	if in.Desired == api.DesiredStopped || in.Draining {
		return
	}
	if in.Node == "" {
		p.remove(in) // never placed: nothing runs
		return
	}
	if !p.noticeGiven(in) {
		return // announced to the instance; stopped once its time comes
	}
	if p.c.lb == nil || !published(in.Spec) || !in.healthy() {
		in.Desired = api.DesiredStopped // not in the load balancer: nothing to drain
		p.touch(in)
		return
	}
	in.Draining = true
	in.DrainStarted = p.now
	p.touch(in)
	p.drains = append(p.drains, in.ID)
}

// expireDrains stops instances whose drain outlived the drain timeout (a
// drain that never finishes, or one whose controller died midway).
func (p *pass) expireDrains() {
	for _, in := range p.insts {
		if !in.Draining || in.Desired != api.DesiredRunning {
			continue
		}
		if p.now.Sub(in.DrainStarted) > p.c.cfg.DrainTimeout {
			in.Desired = api.DesiredStopped
			p.touch(in)
		} else {
			p.wakeAt(in.DrainStarted.Add(p.c.cfg.DrainTimeout))
		}
	}
}

// evict moves instances off draining nodes: a replacement starts elsewhere
// and the old instance stops once the replacement is healthy. It also
// finishes, or gives up, the moves rebalance starts, which work the same
// way.
func (p *pass) evict(svc *serviceRecord) {
	insts := p.instancesOf(svc)
	replacement := map[string]*instanceRecord{}
	for _, in := range insts {
		if in.Replaces != "" && in.Desired == api.DesiredRunning {
			replacement[in.Replaces] = in
		}
	}
	for _, in := range insts {
		node := p.nodes[in.Node]
		nodeDraining := node != nil && node.State == api.NodeDraining
		switch {
		case in.live() && nodeDraining && len(in.Spec.Disks) > 0:
			// A VM on its own disks (weft vm create) moves live. Not a
			// VM that boots from its image: a migration would copy its
			// drives with its overlay.
			p.migrateOff(in)
		case in.live() && nodeDraining && in.Spec.RunsOnce():
			// Its drives can be mounted on one node at a time, and a
			// persistent instance runs on one node at a time: it stops
			// first, and the slot starts again elsewhere once it stopped.
			p.stop(in)
		case in.live() && nodeDraining:
			idx := roleIndex(svc.Spec, in.Role)
			if idx < 0 {
				continue
			}
			in.Evicting = true
			p.touch(in)
			if replacement[in.ID] == nil {
				replacement[in.ID] = p.create(svc, svc.Spec.Roles[idx], in.Slot, in.ID)
			}
		case in.Evicting && in.Desired == api.DesiredRunning && !in.Draining:
			repl := replacement[in.ID]
			switch {
			case repl != nil && repl.healthy():
				// Passes come back here until the stop's notice ends:
				// the move is told once, when the stop goes ahead.
				if p.stop(in); in.Desired == api.DesiredStopped || in.Draining {
					p.event(api.Event{Type: "instance.moved", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
						Message: fmt.Sprintf("instance %s replaced by %s on %s; stopping it", in.ID, repl.ID, repl.Node)})
				}
			case in.Rebalancing:
				p.checkMove(in, repl)
			case !nodeDraining:
				// Undrained before the replacement was ready: keep the original.
				in.Evicting = false
				p.touch(in)
				if repl != nil {
					p.stop(repl)
				}
			case repl == nil:
				if idx := roleIndex(svc.Spec, in.Role); idx >= 0 {
					p.create(svc, svc.Spec.Roles[idx], in.Slot, in.ID)
				}
			}
		}
	}
}

// upgrade walks update domains in order. A domain is done when each of its
// slots has a healthy instance of the current template; the next domain's
// outdated instances are only taken down after that, so at most one domain
// is ever out of service. A domain that stays unhealthy halts the upgrade.
func (p *pass) upgrade(svc *serviceRecord) {
	if svc.Status == api.ServiceHalted {
		return
	}
	uds := upgradeDomains(svc.Spec)
	insts := p.instancesOf(svc)
	outdated := map[int][]*instanceRecord{}
	hashes := make([]string, len(svc.Spec.Roles)) // a role's hash is a JSON encoding: once per pass, not per instance
	for i, role := range svc.Spec.Roles {
		hashes[i] = templateHash(role)
	}
	for _, in := range insts {
		idx := roleIndex(svc.Spec, in.Role)
		if idx >= 0 && in.live() && in.Template != hashes[idx] {
			outdated[in.UpdateDomain] = append(outdated[in.UpdateDomain], in)
		}
	}
	if len(outdated) == 0 && svc.Status != api.ServiceUpgrading {
		return
	}
	// notReady lists, per domain, the current-template instances (or empty
	// slots) that are not healthy yet.
	notReady := map[int][]string{}
	failing := map[int]int{} // of notReady, the instances that keep failing to start
	var oldest = map[int]time.Time{}
	for _, role := range svc.Spec.Roles {
		hash := templateHash(role)
		for slot := 0; slot < role.Instances; slot++ {
			ud := slot % uds
			var cur *instanceRecord
			for _, in := range insts {
				if in.Role == role.Name && in.Slot == slot && in.live() && in.Template == hash {
					cur = in
				}
			}
			if cur != nil && cur.healthy() {
				continue
			}
			what := fmt.Sprintf("%s slot %d has no instance yet", role.Name, slot)
			since := p.now
			if cur != nil {
				what = fmt.Sprintf("instance %s is %s/%s", cur.ID, cur.State, cur.Health)
				if cur.Message != "" {
					what += " (" + cur.Message + ")"
				}
				if cur.LastError != "" {
					what += ", last error: " + cur.LastError
				}
				if cur.Node != "" && cur.FailedStarts >= api.FailingAfter {
					failing[ud]++
				}
				since = cur.CreatedAt
			}
			notReady[ud] = append(notReady[ud], what)
			if t, ok := oldest[ud]; !ok || since.Before(t) {
				oldest[ud] = since
			}
		}
	}
	domain := -1
	for d := 0; d < uds; d++ {
		if len(outdated[d]) > 0 || len(notReady[d]) > 0 {
			domain = d
			break
		}
	}
	if domain < 0 {
		if svc.Status == api.ServiceUpgrading {
			svc.Status, svc.Upgrade, svc.Message = api.ServiceStable, nil, ""
			p.svcDirty[svc.key()] = true
			p.event(api.Event{Type: "upgrade.completed", Tenant: svc.Tenant, Service: svc.Name,
				Message: fmt.Sprintf("service %s upgraded to version %d", svc.Name, svc.Version)})
		}
		return
	}
	// Progress counts the domains that hold instances ("of 3" for three
	// instances, however many domains the model allows).
	shown := max(occupiedDomains(svc.Spec), domain+1)
	if svc.Status != api.ServiceUpgrading {
		from := svc.Version - 1
		if n := len(svc.Revisions); n > 0 {
			from = svc.Revisions[n-1].Version
		}
		svc.Status = api.ServiceUpgrading
		svc.Upgrade = &api.Upgrade{FromVersion: from, ToVersion: svc.Version, Domain: -1, Domains: shown, StartedAt: p.now}
		p.svcDirty[svc.key()] = true
		p.event(api.Event{Type: "upgrade.started", Tenant: svc.Tenant, Service: svc.Name,
			Message: fmt.Sprintf("service %s: rolling upgrade to version %d over %d update domains", svc.Name, svc.Version, shown)})
	}
	if svc.Upgrade.Domain != domain {
		svc.Upgrade.Domain = domain
		p.svcDirty[svc.key()] = true
		p.event(api.Event{Type: "upgrade.domain", Tenant: svc.Tenant, Service: svc.Name,
			Message: fmt.Sprintf("service %s: upgrading update domain %d of %d", svc.Name, domain+1, shown)})
	}
	for _, in := range outdated[domain] {
		p.stop(in)
	}
	if len(outdated[domain]) > 0 || len(notReady[domain]) == 0 {
		return
	}
	// A domain whose every waiting instance keeps failing to start halts
	// at once: waiting for the timeout would not make it start.
	why := ""
	switch {
	case failing[domain] == len(notReady[domain]):
		why = fmt.Sprintf("update domain %d of %d is failing: %s", domain+1, shown, notReady[domain][0])
	case p.now.Sub(oldest[domain]) > p.c.cfg.UpgradeTimeout:
		why = fmt.Sprintf("update domain %d of %d did not become healthy within %s: %s", domain+1, shown, p.c.cfg.UpgradeTimeout, notReady[domain][0])
	default:
		p.wakeAt(oldest[domain].Add(p.c.cfg.UpgradeTimeout))
	}
	if why != "" {
		svc.Status = api.ServiceHalted
		svc.Message = fmt.Sprintf("%s; the other domains keep the old version (weft rollback %s)", why, svc.Name)
		p.svcDirty[svc.key()] = true
		p.event(api.Event{Type: "upgrade.halted", Level: "error", Tenant: svc.Tenant, Service: svc.Name, Message: "service " + svc.Name + ": " + svc.Message})
	}
}
