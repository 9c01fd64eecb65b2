package fabric

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftcloud/weft/api"
)

// A reconcile pass reads and decides without the controller's lock; these
// tests write between its read and its commit, as a heartbeat or an API
// call may, and check that the pass neither overwrites that write nor
// commits a decision the write made wrong: it runs again under the lock.

// TestStalePassDoesNotOverwriteANewerWrite: a heartbeat writes an
// instance's status while a pass that changes that instance (an upgrade
// stops it) runs; the status stays, and the pass's change is made too.
func TestStalePassDoesNotOverwriteANewerWrite(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	s.settle(20, "all running", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	s.deploy(webSpec(3, "2"))

	p := s.c.newPass()
	p.run()
	var target instanceRecord
	for _, in := range s.records("hello") {
		if in.Slot == 0 {
			target = in
		}
	}
	if !p.dirty[target.ID] {
		t.Fatalf("the pass does not change %s (slot 0, the first update domain); the test needs one that does", target.ID)
	}
	// The heartbeat arrives while the pass runs.
	if _, err := s.c.Heartbeat(s.ctx, target.Node, api.Heartbeat{Instances: []api.InstanceStatus{{
		ID: target.ID, State: api.StateRunning, Health: api.HealthHealthy, Ports: map[string]int{"http": 20000}, Restarts: 7,
	}}}); err != nil {
		t.Fatal(err)
	}
	conflicts := testutil.ToFloat64(s.c.figures.conflicts)
	if err := s.c.commitPass(s.ctx, p, p.batch(true), time.Now()); err != nil {
		t.Fatal(err)
	}
	got, ok := get[instanceRecord](s.store, "instances", target.key())
	if !ok {
		t.Fatalf("instance %s gone", target.ID)
	}
	if got.Restarts != 7 {
		t.Errorf("instance %s has %d restarts after the pass; the heartbeat written during the pass said 7: the pass wrote what it had read before", target.ID, got.Restarts)
	}
	if got.Desired != api.DesiredStopped {
		t.Errorf("instance %s is desired %s; the upgrade should stop it", target.ID, got.Desired)
	}
	if n := testutil.ToFloat64(s.c.figures.conflicts) - conflicts; n != 1 {
		t.Errorf("%v conflicts counted; want 1", n)
	}
}

// TestPassRunsAgainWhenItsServiceChanged: a service scaled down while a
// pass creates its instances gets the instances of its new spec only, and
// the events told are those of the pass that was written.
func TestPassRunsAgainWhenItsServiceChanged(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	seq := lastEventSeq(s.c)

	p := s.c.newPass()
	p.run()
	if len(p.dirty) != 3 {
		t.Fatalf("the pass makes %d instances; want 3", len(p.dirty))
	}
	s.deploy(webSpec(1, "1")) // scaled down while the pass runs
	if err := s.c.commitPass(s.ctx, p, p.batch(true), time.Now()); err != nil {
		t.Fatal(err)
	}
	if recs := s.records("hello"); len(recs) != 1 {
		t.Errorf("%d instances after the pass; the service was scaled to 1 before it wrote", len(recs))
	}
	events, _ := s.c.events.Since(seq)
	placed := 0
	for _, e := range events {
		if e.Type == "instance.placed" {
			placed++
		}
	}
	if placed != 1 {
		t.Errorf("%d instance.placed events; want 1 (the pass that was not written tells nothing)", placed)
	}
}

// TestPassRunsAgainWhenItsNodeDrained: a pass that placed instances on a
// node drained meanwhile places them elsewhere.
func TestPassRunsAgainWhenItsNodeDrained(t *testing.T) {
	s := newSim(t, 2)
	s.deploy(webSpec(2, "1"))
	p := s.c.newPass()
	p.run()
	if _, err := s.c.DrainNode(s.ctx, "node-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.c.commitPass(s.ctx, p, p.batch(true), time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, in := range s.records("hello") {
		if in.Node == "node-1" {
			t.Errorf("instance %s placed on node-1, drained before the pass wrote", in.ID)
		}
	}
}

func lastEventSeq(c *Controller) uint64 {
	events, _ := c.events.Since(0)
	if len(events) == 0 {
		return 0
	}
	return events[len(events)-1].Seq
}

// TestNodeHeardDuringThePassIsNotDeclaredDown: a pass that found a node
// silent past its TTL does not declare it down when its heartbeat
// arrived while the pass ran.
func TestNodeHeardDuringThePassIsNotDeclaredDown(t *testing.T) {
	s := newSim(t, 2)
	s.step()
	seen, _ := s.c.lastSeen("node-2")
	s.clock.Advance(seen.ttl + time.Second)
	if _, err := s.c.Heartbeat(s.ctx, "node-1", api.Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	p := s.c.newPass()
	p.run()
	if len(p.downed) != 1 || p.downed[0] != "node-2" {
		t.Fatalf("the pass declares %v down; want node-2, silent past its TTL", p.downed)
	}
	if _, err := s.c.Heartbeat(s.ctx, "node-2", api.Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	if err := s.c.commitPass(s.ctx, p, p.batch(true), time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.c.Node(s.ctx, "node-2"); n.State != api.NodeReady {
		t.Errorf("node-2 is %s; its heartbeat arrived before the pass wrote", n.State)
	}
}

// TestNodeFirstSeenByANewLeaderGetsTwoTTLs: a controller that has not
// heard from a node yet (newly elected, or restarted) declares it down
// only two TTLs after its first pass, and once the node's heartbeat was
// answered, one TTL is back.
func TestNodeFirstSeenByANewLeaderGetsTwoTTLs(t *testing.T) {
	s := newSim(t, 2)
	s.step()
	ttl := s.c.ttlFor(s.c.cfg.HeartbeatInterval)
	s.c.seenMu.Lock()
	clear(s.c.seen) // what a newly elected leader knows
	s.c.seenMu.Unlock()
	pass := func() []string {
		t.Helper()
		if _, err := s.c.Heartbeat(s.ctx, "node-1", api.Heartbeat{}); err != nil {
			t.Fatal(err)
		}
		p := s.c.newPass()
		p.run()
		return p.downed
	}
	if downed := pass(); len(downed) != 0 {
		t.Fatalf("the first pass declares %v down", downed)
	}
	s.clock.Advance(ttl + time.Second)
	if downed := pass(); len(downed) != 0 {
		t.Fatalf("one TTL and a second after the first pass, %v declared down; want none before two TTLs", downed)
	}
	s.clock.Advance(ttl)
	if downed := pass(); len(downed) != 1 || downed[0] != "node-2" {
		t.Fatalf("two TTLs and a second after the first pass, %v declared down; want node-2", downed)
	}
	if seen, _ := s.c.lastSeen("node-1"); seen.ttl != ttl {
		t.Errorf("node-1, heard and answered, has a TTL of %v; want %v", seen.ttl, ttl)
	}
}
