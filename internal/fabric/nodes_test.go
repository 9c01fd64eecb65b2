package fabric

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// A node's allocated CPU is a sum of floats: it is rounded to the
// thousandth (the "m" in 100m) so that JSON shows 0.3, not
// 0.30000000000000004.
func TestNodeAllocatedCPUIsRounded(t *testing.T) {
	s := newSim(t, 1)
	spec := webSpec(3, "1")
	spec.Roles[0].Size.CPU = 0.1
	s.deploy(spec)
	s.settle(20, "3 placed", func() bool { return len(s.records("hello")) == 3 })
	n, err := s.c.Node(s.ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(n.Allocated)
	if !strings.Contains(string(data), `"cpu":0.3,`) {
		t.Errorf("allocated %s, want cpu 0.3", data)
	}
}

// TestHeartbeatCountsWhenItArrives: a heartbeat that waits behind a long
// pass or deploy (the controller's lock) still shows the node alive from
// when it arrived, so that the next pass does not declare it down.
func TestHeartbeatCountsWhenItArrives(t *testing.T) {
	s := newSim(t, 1)
	s.step()
	s.clock.Advance(1500 * time.Millisecond)
	arrived := s.clock.Now()
	s.c.mu.Lock() // a long pass
	done := make(chan error, 1)
	go func() {
		_, err := s.c.Heartbeat(s.ctx, "node-1", api.Heartbeat{})
		done <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if last, _ := s.c.lastSeen("node-1"); last.at.Equal(arrived) {
			break
		}
		if time.Now().After(deadline) {
			s.c.mu.Unlock()
			t.Fatal("a heartbeat waiting for the controller's lock did not count as heard")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.clock.Advance(1500 * time.Millisecond) // the pass goes on: 3s since the step, 1.5s since the heartbeat
	s.c.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.c.reconcile(s.ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.c.Node(s.ctx, "node-1"); n.State != api.NodeReady {
		t.Errorf("node-1 is %s after a heartbeat 1.5s ago (TTL 2s), want ready", n.State)
	}
}

// TestNodeIsNotSilentWhileItsHeartbeatIsTaken: a node waits for each
// heartbeat's reply before it sends the next, so a heartbeat held up for
// longer than the TTL (behind the controller's lock) does not make its
// node silent; it counts until it is answered.
func TestNodeIsNotSilentWhileItsHeartbeatIsTaken(t *testing.T) {
	s := newSim(t, 2)
	s.deploy(webSpec(2, "1"))
	s.settle(20, "all healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	in := s.records("hello")[0]
	s.c.mu.Lock() // a long write: the heartbeat below changes something, so it waits
	done := make(chan error, 1)
	go func() {
		_, err := s.c.Heartbeat(s.ctx, in.Node, api.Heartbeat{Instances: []api.InstanceStatus{
			{ID: in.ID, State: api.StateRunning, Health: api.HealthUnhealthy},
		}})
		done <- err
	}()
	for seen, _ := s.c.lastSeen(in.Node); seen.taking == 0; seen, _ = s.c.lastSeen(in.Node) {
		time.Sleep(10 * time.Millisecond)
	}
	seen, _ := s.c.lastSeen(in.Node)
	s.clock.Advance(seen.ttl + time.Second)
	p := s.c.newPass()
	p.checkNodes()
	s.c.mu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if slices.Contains(p.downed, in.Node) { // the other node, silent, is down
		t.Fatalf("node %s declared down while its heartbeat waited to be taken", in.Node)
	}
	if after, _ := s.c.lastSeen(in.Node); !after.at.Equal(s.clock.Now()) || after.taking != 0 {
		t.Errorf("after the answer: heard at %s, %d heartbeats being taken; want %s (the answer), 0", after.at, after.taking, s.clock.Now())
	}
	s.step()
	if n, _ := s.c.Node(s.ctx, in.Node); n.State != api.NodeReady {
		t.Errorf("node %s is %s after its heartbeat was answered", in.Node, n.State)
	}
}

// TestHeartbeatsAreWrittenTogether: heartbeats that arrive while the
// controller is busy are written in one commit, not one commit each (the
// commits, one after another, capped how many nodes a controller holds).
func TestHeartbeatsAreWrittenTogether(t *testing.T) {
	const nodes = 20
	s := newSim(t, nodes)
	s.deploy(webSpec(nodes, "1"))
	s.settle(30, "all healthy", func() bool { return s.healthyCurrent("hello", "web") == nodes })
	byNode := map[string]string{}
	for _, in := range s.records("hello") {
		byNode[in.Node] = in.ID
	}
	before := s.store.Index()
	s.c.mu.Lock() // a long pass: the heartbeats queue up
	errs := make(chan error, nodes)
	for node, id := range byNode {
		go func() {
			_, err := s.c.Heartbeat(s.ctx, node, api.Heartbeat{Instances: []api.InstanceStatus{
				{ID: id, State: api.StateRunning, Health: api.HealthUnhealthy, Message: "probe failed"},
			}})
			errs <- err
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s.c.mu.Unlock()
	for range byNode {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if commits := s.store.Index() - before; commits > 3 {
		t.Errorf("%d heartbeats took %d commits, want them batched (at most 3)", len(byNode), commits)
	}
	for _, in := range s.records("hello") {
		if in.Health != api.HealthUnhealthy {
			t.Errorf("instance %s is %s, want the unhealthy its node reported", in.ID, in.Health)
		}
	}
}

// TestUnchangedHeartbeatTakesNoLock: a heartbeat that changes nothing is
// answered while the controller's lock is held (by a pass's write, a
// deploy), with the interval and fence it would get otherwise; one that
// changes something waits for the lock and is written.
func TestUnchangedHeartbeatTakesNoLock(t *testing.T) {
	s := newSim(t, 2)
	s.deploy(webSpec(2, "1"))
	s.settle(20, "all healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	in := s.records("hello")[0]
	report := func(health string) api.Heartbeat {
		return api.Heartbeat{Instances: []api.InstanceStatus{{ID: in.ID, State: api.StateRunning, Health: health, Ports: map[string]int{"http": 20000}}}}
	}
	before := s.store.Index()
	s.c.mu.Lock()
	unchanged := make(chan api.HeartbeatReply, 1)
	go func() {
		reply, err := s.c.Heartbeat(s.ctx, in.Node, report(api.HealthHealthy))
		if err != nil {
			t.Error(err)
		}
		unchanged <- reply
	}()
	var reply api.HeartbeatReply
	select {
	case reply = <-unchanged:
	case <-time.After(20 * time.Second):
		s.c.mu.Unlock()
		t.Fatal("a heartbeat that changes nothing waited for the controller's lock")
	}
	if !reply.Known || reply.State != api.NodeReady || reply.Interval == 0 || reply.Fence == 0 || reply.Index != before {
		t.Errorf("reply %+v; want known, ready, an interval and a fence, index %d", reply, before)
	}
	changed := make(chan error, 1)
	go func() {
		_, err := s.c.Heartbeat(s.ctx, in.Node, report(api.HealthUnhealthy))
		changed <- err
	}()
	s.c.mu.Unlock()
	if err := <-changed; err != nil {
		t.Fatal(err)
	}
	if got, _ := s.c.findInstance(api.AllTenants, in.ID); got.Health != api.HealthUnhealthy {
		t.Errorf("instance %s is %s after its node reported it unhealthy", in.ID, got.Health)
	}
}

// TestHeartbeatFindsInstancesOfDashedServices: a service's name may
// contain dashes and begin with another's name; a node's report of each
// instance lands on that instance's own record.
func TestHeartbeatFindsInstancesOfDashedServices(t *testing.T) {
	s := newSim(t, 2)
	s.deploy(webSpec(1, "1"))
	dashed := webSpec(1, "1")
	dashed.Name = "hello-web"
	s.deploy(dashed)
	s.settle(20, "both running", func() bool {
		return s.healthyCurrent("hello", "web") == 1 && s.healthyCurrent("hello-web", "web") == 1
	})
	for _, service := range []string{"hello", "hello-web"} {
		in := s.records(service)[0]
		if _, err := s.c.Heartbeat(s.ctx, in.Node, api.Heartbeat{Instances: []api.InstanceStatus{
			{ID: in.ID, State: api.StateRunning, Health: api.HealthUnhealthy, Message: "reported for " + service},
		}}); err != nil {
			t.Fatal(err)
		}
		if got := s.records(service)[0]; got.Message != "reported for "+service {
			t.Errorf("instance %s of %s: message %q after its node's report", in.ID, service, got.Message)
		}
	}
}
