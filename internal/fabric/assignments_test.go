package fabric

import (
	"context"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestAssignmentsWaitForTheirOwnNode: a node's blocking query for its
// assignments ends when what the node must run changes, its peers'
// status included, and not for writes that concern only other nodes (a
// thousand agents were all woken by every write).
func TestAssignmentsWaitForTheirOwnNode(t *testing.T) {
	s := newSim(t, 2)
	s.deploy(webSpec(2, "1"))
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	first, err := s.c.Assignments(s.ctx, "node-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Instances) != 1 || len(first.Instances[0].Peers) != 2 {
		t.Fatalf("node-1 assigned %+v, want one instance with two peers", first.Instances)
	}
	answers := make(chan api.Assignments, 1)
	go func() {
		as, err := s.c.Assignments(context.Background(), "node-1", first.Index, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		answers <- as
	}()

	// Another node registers and heartbeats: nothing of node-1's changes.
	s.addNode("node-3", "fd3", 4)
	if _, err := s.c.Heartbeat(s.ctx, "node-3", api.Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	if s.store.Index() <= first.Index {
		t.Fatal("the store did not move")
	}
	select {
	case as := <-answers:
		t.Fatalf("node-1's query ended on a write that does not concern it (index %d -> %d)", first.Index, as.Index)
	case <-time.After(500 * time.Millisecond):
	}

	// Its peer on node-2 turns unhealthy: node-1's assignment shows it.
	var peer string
	for _, p := range first.Instances[0].Peers {
		if p.Node == "node-2" {
			peer = p.ID
		}
	}
	if _, err := s.c.Heartbeat(s.ctx, "node-2", api.Heartbeat{Instances: []api.InstanceStatus{
		{ID: peer, State: api.StateRunning, Health: api.HealthUnhealthy},
	}}); err != nil {
		t.Fatal(err)
	}
	select {
	case as := <-answers:
		if as.Index <= first.Index || len(as.Instances) != 1 {
			t.Fatalf("answer %+v", as)
		}
		for _, p := range as.Instances[0].Peers {
			if p.ID == peer && p.Health != api.HealthUnhealthy {
				t.Errorf("peer %s health %s, want unhealthy", peer, p.Health)
			}
		}
	case <-time.After(3 * time.Second):
		t.Fatal("node-1's query did not end when its peer's health changed")
	}
}

// TestPeersAloneWaitForAHeartbeatInterval: a change of a node's peers
// alone (another member of the role turning unhealthy) reaches the node
// within a heartbeat interval, not at once; a change of its own instances
// reaches it at once, with the peers as they are then. A 100-instance
// role's deploy woke each of its nodes for each of its 300 state changes.
func TestPeersAloneWaitForAHeartbeatInterval(t *testing.T) {
	s := newSim(t, 2)
	s.c.cfg.HeartbeatInterval = time.Hour // a fleet that reports hourly: peers alone never end the wait here
	s.deploy(webSpec(2, "1"))
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	first, err := s.c.Assignments(s.ctx, "node-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	own := first.Instances[0].Instance.ID
	var peer string
	for _, p := range first.Instances[0].Peers {
		if p.Node == "node-2" {
			peer = p.ID
		}
	}
	answers := make(chan api.Assignments, 1)
	go func() {
		as, err := s.c.Assignments(context.Background(), "node-1", first.Index, time.Minute)
		if err != nil {
			t.Error(err)
		}
		answers <- as
	}()
	if _, err := s.c.Heartbeat(s.ctx, "node-2", api.Heartbeat{Instances: []api.InstanceStatus{
		{ID: peer, State: api.StateRunning, Health: api.HealthUnhealthy},
	}}); err != nil {
		t.Fatal(err)
	}
	select {
	case as := <-answers:
		t.Fatalf("node-1's query ended at once on a change of its peer alone (index %d -> %d)", first.Index, as.Index)
	case <-time.After(500 * time.Millisecond):
	}

	// Its own instance's record changes (node-1 reports it unhealthy):
	// that answers at once, with the peer's change.
	if _, err := s.c.Heartbeat(s.ctx, "node-1", api.Heartbeat{Instances: []api.InstanceStatus{
		{ID: own, State: api.StateRunning, Health: api.HealthUnhealthy},
	}}); err != nil {
		t.Fatal(err)
	}
	select {
	case as := <-answers:
		if len(as.Instances) != 1 {
			t.Fatalf("answer %+v", as)
		}
		for _, p := range as.Instances[0].Peers {
			if p.ID == peer && p.Health != api.HealthUnhealthy {
				t.Errorf("peer %s health %s, want unhealthy", peer, p.Health)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node-1's query did not end when its own instance changed")
	}
}
