package fabric

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/vpn"
)

// Every node holds a blocking query for its assignments. Answering them
// from the whole state on every store change cost each change a decode of
// every instance per node (1,000 nodes and 20,000 instances: 20 million
// decodes for one heartbeat's write), and woke every agent to reconcile
// an unchanged list. The assignment view is read once per store index and
// shared by all the queries; a query returns only when its own node's
// assignments changed.

// assignCoalesce is how long a woken query lets further writes land
// before it reads the state.
const assignCoalesce = 20 * time.Millisecond

// A view is built from every instance; while writes keep coming (a
// deploy, a heal), the waiting queries would build one per write. After a
// build that took d, the next waits at least viewSpacing × d: building
// views takes at most about a fifth of the controller's time, however
// many instances and however starved the machine.
const viewSpacing = 4

// A node's assignments change for two reasons: its own instances (placed,
// stopped, changed), and their peers (another member of a placement group
// started, stopped or changed health). Own changes answer the node's
// query at once. Changes of peers alone answer it within one heartbeat
// interval of the fleet (liveness.go): a peer's state is only as fresh as
// its node's last heartbeat anyway. Waking on each of them made a deploy
// of a 100-instance role send each of the 100 nodes holding it every one
// of its 300 state changes, each time with the role's whole peer list
// (O(n²) bytes per role, for the controller to encode and the nodes to
// read).

// assignView is what every node is assigned as of one store index.
type assignView struct {
	index  uint64
	byNode map[string][]assigned
	// insts and nodes are the records the view was built from, for the
	// members of the networks a node's instances are on.
	insts []*instanceRecord
	nodes map[string]nodeRecord
	// vpns are the VPN gateways, by their network's key.
	vpns map[string]*vpn.Record
	// changedAt is the index of the view in which each node's
	// assignments last changed; a node absent from it has none, and has
	// had none since changedAt's base (the first view).
	changedAt map[string]uint64
	base      uint64
	sums      map[string]uint64 // each node's fingerprint (addSum)
	// ownChangedAt and ownSums are the same for the node's instances
	// and their networks, leaving out their peers.
	ownChangedAt map[string]uint64
	ownSums      map[string]uint64
	// byGroup is each placement group's peers, made from insts when
	// Peers first asks (an instance asking its metadata): most views are
	// never asked, and making them is a walk over every instance.
	byGroupOnce sync.Once
	byGroup     map[string][]api.Peer
}

// peersOf returns a placement group's peers as of the view.
func (v *assignView) peersOf(group string) []api.Peer {
	v.byGroupOnce.Do(func() { v.byGroup = peers(v.insts, v.nodes) })
	return v.byGroup[group]
}

// assigned is one instance in a node's assignments: its record, shared
// with the other queries (read only), the version of its placement
// group's peers (the view's peersOf has them), and whether it is a live
// migration coming to the node.
type assigned struct {
	rec          *instanceRecord
	peersVersion uint64 // its group's fingerprint
	incoming     bool
}

// assignViews builds the views, one per store index at most.
type assignViews struct {
	mu  sync.Mutex
	cur *assignView
	// built is when cur was built and took how long (viewSpacing).
	builtAt time.Time
	took    time.Duration
}

// latest is the newest view built, or one built now if none was.
func (v *assignViews) latest(c *Controller) *assignView {
	v.mu.Lock()
	cur := v.cur
	v.mu.Unlock()
	if cur != nil {
		return cur
	}
	return v.view(c)
}

// nextBuild is when a waiting query may next build a view.
func (v *assignViews) nextBuild() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.builtAt.Add(viewSpacing * v.took)
}

// view returns a view as of the store's current index or later.
func (v *assignViews) view(c *Controller) *assignView {
	s := c.store
	v.mu.Lock()
	defer v.mu.Unlock()
	idx := s.Index()
	if v.cur != nil && v.cur.index >= idx {
		return v.cur
	}
	began := time.Now()
	defer func() { v.builtAt, v.took = time.Now(), time.Since(began) }()
	insts, revs := c.instCache.list(s, state.KindInstances)
	nodeRecs, _ := c.nodeCache.list(s, state.KindNodes)
	nodes := make(map[string]nodeRecord, len(nodeRecs))
	for _, n := range nodeRecs {
		nodes[n.Name] = *n
	}
	next := &assignView{index: idx, byNode: map[string][]assigned{}, changedAt: map[string]uint64{}, sums: map[string]uint64{},
		ownChangedAt: map[string]uint64{}, ownSums: map[string]uint64{},
		insts: insts, nodes: nodes, vpns: map[string]*vpn.Record{}}
	// A group's fingerprint covers what its peers are made of (peers):
	// the records of its members and the hosts of their nodes.
	groupSums := map[string]uint64{}
	// A network's fingerprint covers its members (nodeNetworks.networks):
	// a node with an instance on it hears of every member that comes, goes
	// or changes, whatever its service.
	netSums := map[string]uint64{}
	for i, rec := range insts {
		if rec.Node != "" && rec.Desired == api.DesiredRunning {
			groupSums[rec.group()] += fingerprint(rec.key()+"\x00"+nodes[rec.Node].Host, revs[i], 0, false)
		}
		if rec.Node != "" && rec.Spec.Network != "" && rec.PrivateAddress != "" {
			netSums[networks.Key(rec.Tenant, rec.Spec.Network)] += fingerprint(rec.key()+"\x00"+nodes[rec.Node].Host, revs[i], 0, false)
		}
	}
	// And its security rules: a rule added or removed reaches every node
	// carrying the network (the entry's revision, not its value, is what
	// changes with them).
	for _, e := range s.List(networks.KindRules, "") {
		if _, ok := netSums[e.Key]; ok {
			netSums[e.Key] += fingerprint(networks.KindRules+"/"+e.Key, e.Rev, 0, false)
		}
	}
	// A network's VPN gateway is part of it for every node on it (the
	// routes to the peer, the gateway's host); the node running the
	// gateway hears of the network's members too.
	gateways := vpn.List(s, api.AllTenants)
	for _, g := range gateways {
		key := networks.Key(g.Tenant, g.Network)
		netSums[key] += fingerprint(vpn.KindVPNs+"/"+key+"\x00"+nodes[g.Node].Host, g.Rev, 0, false)
	}
	for _, g := range gateways {
		key := networks.Key(g.Tenant, g.Network)
		next.vpns[key] = &g.Record
		next.addSum(g.Node, vpn.KindVPNs+"/"+key, g.Rev, netSums[key], 0, false)
	}
	for i, rec := range insts {
		if rec.Node != "" {
			var nets uint64
			if rec.Spec.Network != "" {
				nets = netSums[networks.Key(rec.Tenant, rec.Spec.Network)]
			}
			next.byNode[rec.Node] = append(next.byNode[rec.Node], assigned{rec: rec, peersVersion: groupSums[rec.group()]})
			next.addSum(rec.Node, rec.key(), revs[i], nets, groupSums[rec.group()], false)
		}
		if rec.Migration != nil && rec.Migration.To != "" && rec.Migration.To != rec.Node {
			// The destination carries the VM's network from now on,
			// maybe for this copy alone: it hears of the members too.
			var deps uint64
			if rec.Spec.Network != "" {
				deps = netSums[networks.Key(rec.Tenant, rec.Spec.Network)]
			}
			next.byNode[rec.Migration.To] = append(next.byNode[rec.Migration.To], assigned{rec: rec, incoming: true})
			next.addSum(rec.Migration.To, rec.key(), revs[i], deps, 0, true)
		}
	}
	prev := v.cur
	if prev == nil || idx < prev.index {
		// The first view, or the state was restored to an earlier index:
		// every node counts as changed.
		next.base = idx
		noteChanges(idx, nil, nil, next.sums, next.changedAt)
		noteChanges(idx, nil, nil, next.ownSums, next.ownChangedAt)
	} else {
		next.base = prev.base
		noteChanges(idx, prev.sums, prev.changedAt, next.sums, next.changedAt)
		noteChanges(idx, prev.ownSums, prev.ownChangedAt, next.ownSums, next.ownChangedAt)
	}
	v.cur = next
	return next
}

// noteChanges fills changedAt, the index at which each node's fingerprint
// in sums last changed, from the previous view's (nil for the first view,
// in which every node counts as changed at idx).
func noteChanges(idx uint64, prevSums, prevChanged, sums, changedAt map[string]uint64) {
	for node, sum := range sums {
		if old, ok := prevSums[node]; ok && old == sum {
			changedAt[node] = prevChanged[node]
		} else {
			changedAt[node] = idx
		}
	}
	for node := range prevSums {
		if _, ok := sums[node]; !ok {
			// Its last assignment went: that is a change too; it stays
			// recorded while the node has none.
			changedAt[node] = idx
			sums[node] = 0
		}
	}
	for node, at := range prevChanged {
		if _, ok := changedAt[node]; !ok {
			changedAt[node] = at
		}
	}
}

// addSum folds one assigned instance into node's fingerprints: nets is
// what its networks are made of, peers what its peers are; ownSums
// leaves peers out.
func (v *assignView) addSum(node, key string, rev, nets, peers uint64, incoming bool) {
	// Order-free: a node's instances are summed, not chained.
	v.sums[node] += fingerprint(key, rev, nets+peers, incoming)
	v.ownSums[node] += fingerprint(key, rev, nets, incoming)
}

// fingerprint hashes one record's key and revision with what else its
// assignment depends on.
func fingerprint(key string, rev, group uint64, incoming bool) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	var b [17]byte
	for i := range 8 {
		b[i] = byte(rev >> (8 * i))
		b[8+i] = byte(group >> (8 * i))
	}
	if incoming {
		b[16] = 1
	}
	h.Write(b[:])
	return h.Sum64() | 1 // never 0, which stands for no assignments
}

// changed is the index of the view in which node's assignments last
// changed; ownChanged, the same leaving out their peers.
func (v *assignView) changed(node string) uint64 { return v.changedIn(v.changedAt, node) }

func (v *assignView) ownChanged(node string) uint64 { return v.changedIn(v.ownChangedAt, node) }

func (v *assignView) changedIn(changedAt map[string]uint64, node string) uint64 {
	if at, ok := changedAt[node]; ok {
		return at
	}
	return v.base
}

// awaitAssignments waits until node's assignments changed after index:
// its own instances or their networks at once, their peers alone within
// a heartbeat interval, or until wait passes; it returns the view then.
func (c *Controller) awaitAssignments(ctx context.Context, view *assignView, node string, index uint64, wait time.Duration) (*assignView, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var peersDue time.Time // when a change of peers alone is answered
	for view.ownChanged(node) <= index {
		if view.changed(node) > index {
			if peersDue.IsZero() {
				interval, _ := c.heartbeatTiming(len(view.nodes))
				peersDue = time.Now().Add(interval)
			}
			if !time.Now().Before(peersDue) {
				break
			}
		}
		if !c.waitPast(wctx, view.index, peersDue) {
			break
		}
		view = c.assignViews.view(c)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return view, nil
}

// waitPast waits for the store to move past index (or for due, if set),
// then for the burst of writes to land and for the next view build to be
// due (viewSpacing). False: wctx ended or the store closed.
func (c *Controller) waitPast(wctx context.Context, index uint64, due time.Time) bool {
	sctx := wctx
	if !due.IsZero() {
		var cancel context.CancelFunc
		sctx, cancel = context.WithDeadline(wctx, due)
		defer cancel()
	}
	if _, err := c.store.Wait(sctx, index); err != nil && sctx.Err() == nil || wctx.Err() != nil {
		return false
	}
	// Writes come in bursts (a pass, then the heartbeats that report on
	// it): let a burst land before reading it.
	select {
	case <-wctx.Done():
		return false
	case <-time.After(max(assignCoalesce, time.Until(c.assignViews.nextBuild()))):
		return true
	}
}

// Assignments returns what node must run. With index > 0 it blocks until
// node's assignments change after index (an answer's Index), or wait
// passes (a blocking query); changes that concern other nodes only do
// not end the wait, and changes of its instances' peers alone end it
// within a heartbeat interval (awaitAssignments).
func (c *Controller) Assignments(ctx context.Context, node string, index uint64, wait time.Duration) (api.Assignments, error) {
	if _, ok := c.store.Get(state.KindNodes, node); !ok {
		return api.Assignments{}, api.Errorf(api.CodeNotFound, "node %s is not registered", node)
	}
	view := c.assignViews.view(c)
	if index > 0 && view.ownChanged(node) <= index {
		if wait <= 0 || wait > 5*time.Minute {
			wait = 30 * time.Second
		}
		var err error
		if view, err = c.awaitAssignments(ctx, view, node, index, wait); err != nil {
			return api.Assignments{}, err
		}
	}
	out := api.Assignments{Index: view.index, Instances: []api.Assignment{}}
	nets := &nodeNetworks{recs: map[string]*networks.Record{}, rules: map[string][]api.NetworkRule{}, used: map[string]bool{}, vpns: view.vpns}
	for _, a := range view.byNode[node] {
		rec := *a.rec
		if a.incoming {
			out.Instances = append(out.Instances, api.Assignment{Instance: rec.Instance, Role: c.openExtensions(rec), Disks: c.diskAccess(rec), Drives: c.driveAccess(rec), Incoming: true,
				Network: nets.attach(c, rec)})
			continue
		}
		out.Instances = append(out.Instances, api.Assignment{Instance: rec.Instance, Role: c.openExtensions(rec), Disks: c.diskAccess(rec), Drives: c.driveAccess(rec),
			PeersVersion: strconv.FormatUint(a.peersVersion, 16), Network: nets.attach(c, rec)})
	}
	out.VPNs = nets.gateways(c, node)
	out.Networks = nets.networks(view.insts, view.nodes)
	return out, nil
}

// Peers returns the peers of instance, which must be assigned to node
// (Assignment.PeersVersion): its role's instances, itself included. They
// come from the newest view built, at least as new as the assignment the
// node read the version from, without building one for each call.
func (c *Controller) Peers(ctx context.Context, node, instance string) ([]api.Peer, error) {
	view := c.assignViews.latest(c)
	for _, a := range view.byNode[node] {
		if a.rec.ID == instance && !a.incoming {
			if p := view.peersOf(a.rec.group()); p != nil {
				return p, nil
			}
			return []api.Peer{}, nil
		}
	}
	return nil, api.Errorf(api.CodeNotFound, "instance %s is not assigned to node %s", instance, node)
}
