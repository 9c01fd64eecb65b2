package fabric

import (
	"context"
	"errors"
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
	if len(first.Instances) != 1 || len(peersOf(t, s, "node-1", first.Instances[0])) != 2 {
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
	for _, p := range peersOf(t, s, "node-1", first.Instances[0]) {
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
		for _, p := range peersOf(t, s, "node-1", as.Instances[0]) {
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
	for _, p := range peersOf(t, s, "node-1", first.Instances[0]) {
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
		for _, p := range peersOf(t, s, "node-1", as.Instances[0]) {
			if p.ID == peer && p.Health != api.HealthUnhealthy {
				t.Errorf("peer %s health %s, want unhealthy", peer, p.Health)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node-1's query did not end when its own instance changed")
	}
}

// peersOf is what the node's agent reads when the instance asks for its
// peers.
func peersOf(t testing.TB, s *sim, node string, a api.Assignment) []api.Peer {
	t.Helper()
	peers, err := s.c.Peers(s.ctx, node, a.Instance.ID)
	if err != nil {
		t.Fatal(err)
	}
	return peers
}

// TestPeersAreTheRolesAndVersioned: a node reads the peers of its own
// instances only; their version in the assignment moves when they change.
func TestPeersAreTheRolesAndVersioned(t *testing.T) {
	s := newSim(t, 2)
	s.deploy(webSpec(2, "1"))
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	first, err := s.c.Assignments(s.ctx, "node-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := first.Instances[0]
	if peers := peersOf(t, s, "node-1", a); len(peers) != 2 {
		t.Fatalf("peers %+v, want the role's 2", peers)
	}
	if _, err := s.c.Peers(s.ctx, "node-2", a.Instance.ID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("node-2 read the peers of node-1's instance: %v, want not found", err)
	}
	var peer string
	for _, p := range peersOf(t, s, "node-1", a) {
		if p.Node == "node-2" {
			peer = p.ID
		}
	}
	if _, err := s.c.Heartbeat(s.ctx, "node-2", api.Heartbeat{Instances: []api.InstanceStatus{
		{ID: peer, State: api.StateRunning, Health: api.HealthUnhealthy},
	}}); err != nil {
		t.Fatal(err)
	}
	next, err := s.c.Assignments(s.ctx, "node-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if next.Instances[0].PeersVersion == a.PeersVersion {
		t.Errorf("peers version %s unchanged when a peer turned unhealthy", a.PeersVersion)
	}
}
