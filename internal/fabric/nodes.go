package fabric

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// RegisterNode records a node (again). A node that was draining stays so.
func (c *Controller) RegisterNode(ctx context.Context, reg api.NodeRegistration) (api.Node, error) {
	if err := api.ValidateNodeName(reg.Name); err != nil {
		return api.Node{}, err
	}
	if reg.FaultDomain == "" {
		reg.FaultDomain = reg.Name
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	rec, exists := get[nodeRecord](c.store, state.KindNodes, reg.Name)
	state0, revoked := rec.State, rec.RevokedBefore
	rec.Node = api.Node{
		Name: reg.Name, Address: reg.Address, Host: reg.Host, FaultDomain: reg.FaultDomain,
		Capacity: reg.Capacity, Runtimes: reg.Runtimes, Attributes: reg.Attributes, Version: reg.Version,
		State: api.NodeReady, RegisteredAt: now,
	}
	if exists && state0 == api.NodeDraining {
		rec.State = api.NodeDraining
	}
	rec.RevokedBefore = revoked
	rec.APIToken = reg.APIToken
	if err := c.apply(ctx, []state.Op{put(state.KindNodes, reg.Name, rec)}); err != nil {
		return api.Node{}, err
	}
	c.markSeen(reg.Name, now)
	c.events.Add(api.Event{Type: "node.registered", Node: reg.Name,
		Message: fmt.Sprintf("node %s registered (fault domain %s, %g CPU, %s, runtimes %v)",
			reg.Name, reg.FaultDomain, reg.Capacity.CPU, reg.Capacity.Memory, reg.Runtimes)})
	c.poke()
	return c.nodeView(rec, c.sharedInstances()), nil
}

// Heartbeat takes a node's report. Only changes are written to the store.
//
// Reports are taken in batches: each written as one batch (one commit)
// for all the heartbeats that arrived while the previous one was being
// written. One commit per heartbeat, under the controller's lock, capped
// the heartbeats a controller could take at the commits it could make one
// after another, and the queue behind it grew until nodes were declared
// down.
func (c *Controller) Heartbeat(ctx context.Context, name string, hb api.Heartbeat) (api.HeartbeatReply, error) {
	// The node is alive from the moment its heartbeat arrives, however
	// long the heartbeat then waits for the lock behind a pass or a
	// deploy: counted only once it had the lock, a busy controller
	// declared every node down at once.
	_, known := c.store.Get(state.KindNodes, name)
	c.figures.heartbeats.WithLabelValues(strconv.FormatBool(known)).Inc()
	if known {
		c.heardFrom(name, c.now())
	}
	req := &heartbeatReq{name: name, hb: hb, heard: known, done: make(chan struct{})}
	c.hbMu.Lock()
	c.hbQueue = append(c.hbQueue, req)
	leads := !c.hbTaking
	c.hbTaking = true
	c.hbMu.Unlock()
	if leads {
		c.takeHeartbeats()
	}
	select {
	case <-req.done:
		return req.reply, req.err
	case <-ctx.Done():
		return api.HeartbeatReply{}, ctx.Err()
	}
}

// heartbeatReq is one heartbeat waiting to be taken.
type heartbeatReq struct {
	name  string
	hb    api.Heartbeat
	heard bool             // counted by heardFrom, to be by answered
	out   heartbeatOutcome // what it changes, as last read
	reply api.HeartbeatReply
	err   error
	done  chan struct{} // closed once reply or err is set
}

// takeHeartbeats takes the queued heartbeats, batch after batch, until
// none is left. One caller at a time runs it (hbTaking).
func (c *Controller) takeHeartbeats() {
	for {
		c.hbMu.Lock()
		batch := c.hbQueue
		c.hbQueue = nil
		if len(batch) == 0 {
			c.hbTaking = false
			c.hbMu.Unlock()
			return
		}
		c.hbMu.Unlock()
		c.heartbeatBatch(batch)
	}
}

// heartbeatBatch folds a batch of reports into the state and writes it at
// once. A report that changes a record an earlier one in the batch
// changes too (a migration's two nodes) is read after that one is written.
//
// Most reports change nothing (a settled fleet's): those are answered
// without the controller's lock, which deploys and the writes of passes
// wait for. Read without the lock, such a report is taken as if just
// before any write under way; the node is alive either way (Heartbeat
// marks it seen before this), so a pass that would declare it down
// meanwhile conflicts and runs again (pass.stillSilent).
func (c *Controller) heartbeatBatch(batch []*heartbeatReq) {
	index := c.store.Index()
	services := nameServices(c.store.List(state.KindServices, "")) // heartbeats write no service
	var changing []*heartbeatReq
	for _, r := range batch {
		r.out = c.heartbeatOps(r, services)
		switch {
		case !r.out.known:
			c.answer(r, 0, nil)
		case len(r.out.ops) == 0:
			c.addEvents(r.out.events)
			c.answer(r, c.store.Index(), nil)
		default:
			changing = append(changing, r)
		}
	}
	if len(changing) > 0 {
		c.writeHeartbeats(changing, index)
	}
}

// writeHeartbeats writes the reports of a batch that change the state,
// under the controller's lock. What each changes was read at index; it is
// read again unless that is still the store's.
func (c *Controller) writeHeartbeats(batch []*heartbeatReq, index uint64) {
	// The write serves every caller in the batch: none's context ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	var services serviceNames
	read := func(r *heartbeatReq) {
		if services == nil {
			services = nameServices(c.store.List(state.KindServices, ""))
		}
		r.out = c.heartbeatOps(r, services)
	}
	var ops []state.Op
	var taken []*heartbeatReq
	keys := map[string]bool{}
	write := func() {
		err := c.apply(ctx, ops)
		idx := c.store.Index()
		for _, r := range taken {
			c.answer(r, idx, err)
		}
		ops, taken = nil, nil
		clear(keys)
	}
	moved := c.store.Index() != index
	for _, r := range batch {
		if moved {
			read(r)
		}
		if !r.out.known {
			c.answer(r, 0, nil)
			continue
		}
		if slices.ContainsFunc(r.out.ops, func(op state.Op) bool { return keys[op.Kind+"/"+op.Key] }) {
			write()
			read(r)
		}
		for _, op := range r.out.ops {
			keys[op.Kind+"/"+op.Key] = true
		}
		c.addEvents(r.out.events)
		ops = append(ops, r.out.ops...)
		taken = append(taken, r)
	}
	write()
}

// addEvents adds events to the log.
func (c *Controller) addEvents(events []api.Event) {
	for _, e := range events {
		c.events.Add(e)
	}
}

// answer ends a heartbeat's wait, with the store's index after its report
// or an error. A known node's reply tells it the interval and fence time
// to keep.
func (c *Controller) answer(r *heartbeatReq, index uint64, err error) {
	if r.heard {
		c.answered(r.name, c.now())
	}
	switch {
	case err != nil:
		r.err = err
	case r.out.known:
		interval, fence := c.tellInterval(r.name)
		r.reply = api.HeartbeatReply{Known: true, State: r.out.nodeState, Index: index, Interval: api.Duration(interval), Fence: api.Duration(fence)}
	default:
		r.reply = api.HeartbeatReply{Known: false}
	}
	close(r.done)
}

// heartbeatOutcome is what one report changes in the state, the events it
// brings, the node's state once they are written, and whether the node is
// known.
type heartbeatOutcome struct {
	ops       []state.Op
	events    []api.Event
	nodeState string
	known     bool
}

// heartbeatOps is what a report changes, read from the state as it is
// (services are the services in it by name). It writes nothing, and runs
// again for the same report when the state has moved since.
func (c *Controller) heartbeatOps(r *heartbeatReq, services serviceNames) heartbeatOutcome {
	name := r.name
	node, ok := get[nodeRecord](c.store, state.KindNodes, name)
	if !ok {
		return heartbeatOutcome{}
	}
	now := c.now()
	var ops []state.Op
	var events []api.Event
	if node.State == api.NodeDown {
		node.State = api.NodeReady
		ops = append(ops, put(state.KindNodes, name, node))
		events = append(events, api.Event{Type: "node.up", Node: name, Message: "node " + name + " is back"})
	}
	var mp *pass // loaded when a report concerns a migration
	for _, st := range r.hb.Instances {
		rec, ok := c.findInstanceIn(services, st.ID)
		if !ok {
			continue
		}
		if rec.Migration != nil {
			if mp == nil {
				mp = c.newPass()
			}
			if in := mp.insts[rec.ID]; in != nil && mp.migrationReport(in, name, st) {
				continue
			}
		}
		if rec.Node != name {
			continue // not ours any more: the agent stops it when it reads its assignments
		}
		if updated, changed := applyStatus(rec, st, node.Host, now); changed {
			ops = append(ops, put(state.KindInstances, rec.key(), updated))
		}
	}
	for _, e := range r.hb.Events {
		if e.Node == "" {
			e.Node = name
		}
		e.Seq = 0
		events = append(events, e)
	}
	if mp != nil {
		ops = append(ops, mp.ops()...)
		events = append(events, mp.events...)
	}
	return heartbeatOutcome{ops: ops, events: events, nodeState: node.State, known: true}
}

// applyStatus folds a reported status into the record.
func applyStatus(rec instanceRecord, st api.InstanceStatus, host string, now time.Time) (instanceRecord, bool) {
	before := rec.Instance
	rec.State = st.State
	rec.Health = st.Health
	if rec.Health == "" {
		rec.Health = api.HealthUnknown
	}
	rec.Restarts = st.Restarts
	rec.Message = st.Message
	rec.LastError = st.LastError
	rec.FailedStarts = st.FailedStarts
	rec.Extensions = st.Extensions
	rec.WasHealthy = rec.WasHealthy || rec.healthy()
	if len(st.Ports) > 0 {
		rec.Ports = maps.Clone(st.Ports)
	}
	rec.Address = instanceAddress(rec, host)
	if reflectEqualInstance(before, rec.Instance) {
		return rec, false
	}
	rec.UpdatedAt = now
	return rec, true
}

// instanceAddress is host:port of the first endpoint that has a port, or the host.
func instanceAddress(rec instanceRecord, host string) string {
	for _, ep := range rec.Spec.Endpoints {
		if p := rec.Ports[ep.Name]; p > 0 {
			return net.JoinHostPort(host, strconv.Itoa(p))
		}
	}
	return host
}

func reflectEqualInstance(a, b api.Instance) bool {
	return a.State == b.State && a.Health == b.Health && a.Restarts == b.Restarts &&
		a.Message == b.Message && a.Address == b.Address && maps.Equal(a.Ports, b.Ports) &&
		a.LastError == b.LastError && a.FailedStarts == b.FailedStarts && reflect.DeepEqual(a.Extensions, b.Extensions)
}

// diskAccess grants the node running a persistent instance access to its
// disks; an instance without them fails to start on the node, which says why.
func (c *Controller) diskAccess(rec instanceRecord) []api.DiskAccess {
	if len(rec.Spec.Disks) == 0 || c.cfg.DiskAccess == nil {
		return nil
	}
	var out []api.DiskAccess
	for _, d := range rec.Spec.Disks {
		a, err := c.cfg.DiskAccess(d)
		if err != nil {
			c.log.Error("no access to a disk for its instance", "instance", rec.ID, "disk", d.Name, "err", err)
			return nil
		}
		out = append(out, a)
	}
	return out
}

// Nodes lists the nodes with what is allocated on them.
func (c *Controller) Nodes(ctx context.Context) []api.Node {
	byNode := map[string][]*instanceRecord{}
	for _, in := range c.sharedInstances() {
		byNode[in.Node] = append(byNode[in.Node], in)
	}
	var out []api.Node
	for _, n := range list[nodeRecord](c.store, state.KindNodes, "") {
		out = append(out, c.nodeView(n, byNode[n.Name]))
	}
	return out
}

// Node returns one node.
func (c *Controller) Node(ctx context.Context, name string) (api.Node, error) {
	n, ok := get[nodeRecord](c.store, state.KindNodes, name)
	if !ok {
		return api.Node{}, api.Errorf(api.CodeNotFound, "no node named %s", name)
	}
	return c.nodeView(n, c.sharedInstances()), nil
}

// sharedInstances is every instance record, decoded once and shared by
// every reader: read it, never change it.
func (c *Controller) sharedInstances() []*instanceRecord {
	insts, _ := c.instCache.list(c.store, state.KindInstances)
	return insts
}

// nodeView is the node with what insts (or those of them on it) allocate there.
func (c *Controller) nodeView(n nodeRecord, insts []*instanceRecord) api.Node {
	v := n.Node
	if seen, ok := c.lastSeen(n.Name); ok {
		v.LastHeartbeat = seen.at
	}
	for _, in := range insts {
		if in.Node == n.Name {
			v.Instances++
			v.Allocated.CPU += in.Spec.Size.CPU
			v.Allocated.Memory += in.Spec.Size.Memory
		}
	}
	// A sum of floats: rounded to the thousandth the model counts CPU in
	// (100m), so that 0.1+0.1+0.1 shows as 0.3.
	v.Allocated.CPU = math.Round(v.Allocated.CPU*1000) / 1000
	return v
}

// DrainNode moves a node's instances elsewhere (each replacement starts
// before the instance it replaces stops) and keeps new ones off it.
func (c *Controller) DrainNode(ctx context.Context, name string) (api.Node, error) {
	return c.setNodeState(ctx, name, api.NodeDraining)
}

// UndrainNode makes a drained node schedulable again.
func (c *Controller) UndrainNode(ctx context.Context, name string) (api.Node, error) {
	return c.setNodeState(ctx, name, api.NodeReady)
}

func (c *Controller) setNodeState(ctx context.Context, name, to string) (api.Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := get[nodeRecord](c.store, state.KindNodes, name)
	if !ok {
		return api.Node{}, api.Errorf(api.CodeNotFound, "no node named %s", name)
	}
	if n.State == api.NodeDown && to == api.NodeDraining {
		return api.Node{}, api.Errorf(api.CodeConflict, "node %s is down; its instances are already being replaced", name)
	}
	if n.State != to && !(to == api.NodeReady && n.State == api.NodeDown) {
		n.State = to
		if err := c.apply(ctx, []state.Op{put(state.KindNodes, name, n)}); err != nil {
			return api.Node{}, err
		}
		typ, msg := "node.draining", "node "+name+" is draining"
		if to == api.NodeReady {
			typ, msg = "node.undrained", "node "+name+" takes instances again"
		}
		c.events.Add(api.Event{Type: typ, Node: name, Message: msg})
		c.poke()
	}
	return c.nodeView(n, c.sharedInstances()), nil
}

// RevokeNode revokes the certificates of node name issued until now: every
// server refuses them from the moment it has applied this (Revoked), so
// the node misses its heartbeats and is declared down. A certificate made
// later, when the node joins again with the join token, is accepted.
func (c *Controller) RevokeNode(ctx context.Context, name string) (api.Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := get[nodeRecord](c.store, state.KindNodes, name)
	if !ok {
		return api.Node{}, api.Errorf(api.CodeNotFound, "no node named %s", name)
	}
	n.RevokedBefore = c.now()
	if err := c.apply(ctx, []state.Op{put(state.KindNodes, name, n)}); err != nil {
		return api.Node{}, err
	}
	c.events.Add(api.Event{Type: "node.revoked", Node: name,
		Message: fmt.Sprintf("node %s: certificates issued before %s revoked", name, n.RevokedBefore.Format(time.RFC3339))})
	return c.nodeView(n, c.sharedInstances()), nil
}

// Revoked reports whether node's certificate issued at issued is revoked,
// from this server's copy of the state: any server answers, leader or not.
func (c *Controller) Revoked(node string, issued time.Time) bool {
	n, ok := get[nodeRecord](c.store, state.KindNodes, node)
	return ok && issued.Before(n.RevokedBefore)
}

// NodeAPIToken is what servers present to node name's agent: the token it
// registered with ("" for a node never registered).
func (c *Controller) NodeAPIToken(name string) string {
	n, _ := get[nodeRecord](c.store, state.KindNodes, name)
	return n.APIToken
}

// ReserveNode takes a node's name for an agent that joins with the join
// token, before its first certificate is signed, so that every certificate
// issued names a node that `weft node revoke` can revoke. It refuses a name
// a live node holds: such a node renews its own certificate, and another
// agent that knows the join token must not take its name. A node that is
// down or was revoked since it registered may join again.
func (c *Controller) ReserveNode(ctx context.Context, name string) error {
	if err := api.ValidateNodeName(name); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, exists := get[nodeRecord](c.store, state.KindNodes, name)
	if exists {
		revoked := rec.RevokedBefore.After(rec.RegisteredAt)
		if rec.State != api.NodeDown && !revoked {
			return api.Errorf(api.CodeConflict, "node %s is registered and %s: its agent renews its own certificate; to give the name to a new agent, revoke the node first (weft node revoke %s)", name, rec.State, name)
		}
		return nil
	}
	rec = nodeRecord{Node: api.Node{Name: name, FaultDomain: name, State: api.NodeDown, RegisteredAt: c.now()}}
	if err := c.apply(ctx, []state.Op{put(state.KindNodes, name, rec)}); err != nil {
		return err
	}
	c.events.Add(api.Event{Type: "node.reserved", Node: name, Message: "node " + name + " joined with the join token: certificate issued"})
	return nil
}

// AssignedTo reports whether an instance assigned to node (or migrating
// to it) has a role template that uses says it uses: a node may fetch the
// packages and images of its own instances only.
func (c *Controller) AssignedTo(node string, uses func(api.RoleSpec) bool) bool {
	for _, rec := range c.sharedInstances() {
		mine := rec.Node == node || (rec.Migration != nil && rec.Migration.To == node)
		if mine && uses(rec.Spec) {
			return true
		}
	}
	return false
}
