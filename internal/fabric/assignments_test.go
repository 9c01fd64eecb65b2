package fabric

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
)

// TestAssignmentsWaitForTheirOwnNode: a node's blocking query for its
// assignments ends when what the node must run changes, its peers'
// status included, and not for writes that concern only other nodes (a
// thousand agents were all woken by every write).
func TestAssignmentsWaitForTheirOwnNode(t *testing.T) {
	s := newSim(t, 2)
	first, _, peer := twoPeers(t, s)
	answers := queryFrom(s, first.Index, 10*time.Second)

	// Another node registers and heartbeats: nothing of node-1's changes.
	s.addNode("node-3", "fd3", 4)
	if _, err := s.c.Heartbeat(s.ctx, "node-3", api.Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	if s.store.Index() <= first.Index {
		t.Fatal("the store did not move")
	}
	noAnswer(t, answers, first.Index, "a write that does not concern it")

	// Its peer on node-2 turns unhealthy: node-1's assignment shows it.
	reportUnhealthy(t, s, "node-2", peer)
	select {
	case as := <-answers:
		if as.Index <= first.Index {
			t.Fatalf("answer %+v", as)
		}
		wantUnhealthyPeer(t, s, as, peer)
	case <-time.After(3 * time.Second):
		t.Fatal("node-1's query did not end when its peer's health changed")
	}
}

// TestMigrationDestinationHearsOfItsNetwork: the destination of a live
// migration that carries the VM's network only for the incoming copy is
// told when another member of the network changes (its DNS server's
// names and its VXLAN peers come from the answer), not only when the
// migration ends.
func TestMigrationDestinationHearsOfItsNetwork(t *testing.T) {
	s := newSim(t, 0)
	for i := 1; i <= 3; i++ {
		s.addNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("fd%d", i), 4, api.RuntimeProcess, api.RuntimeVM)
	}
	if _, err := networks.New(s.store, s.c).Create(s.ctx, api.DefaultTenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	s.deploy(onNetwork(webSpec(1, "1"), "net"))
	s.publishImage("base:1", "sha256:b1")
	vm := onNetwork(webSpec(1, "1"), "net")
	vm.Name, vm.Roles[0].Runtime, vm.Roles[0].Image, vm.Roles[0].Command = "box", api.RuntimeVM, "base:1", nil
	s.deploy(vm)
	s.settle(20, "both running", func() bool {
		return s.healthyCurrent("hello", "web") == 1 && s.healthyCurrent("box", "web") == 1
	})
	var web, box api.Instance
	for _, in := range s.c.Instances(s.ctx, api.AllTenants, "") {
		switch in.Service {
		case "hello":
			web = in
		case "box":
			box = in
		}
	}
	dest := ""
	for name := range s.nodes {
		if name != web.Node && name != box.Node {
			dest = name
		}
	}
	if dest == "" {
		t.Fatalf("no node free of the network: web on %s, box on %s", web.Node, box.Node)
	}
	if _, err := s.c.Migrate(s.ctx, box.ID, dest); err != nil {
		t.Fatal(err)
	}
	first, err := s.c.Assignments(s.ctx, dest, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Instances) != 1 || !first.Instances[0].Incoming || len(first.Networks) != 1 || len(first.Networks[0].Members) != 2 {
		t.Fatalf("the destination's assignments: %+v", first)
	}
	// The web instance turns unhealthy: its role's DNS name loses it.
	if _, err := s.c.Heartbeat(s.ctx, web.Node, api.Heartbeat{Instances: []api.InstanceStatus{
		{ID: web.ID, State: api.StateRunning, Health: api.HealthUnhealthy},
	}}); err != nil {
		t.Fatal(err)
	}
	if at := s.c.assignViews.view(s.c).changed(dest); at <= first.Index {
		t.Fatalf("the destination's assignments last changed at %d, not after %d: it would not hear of the member's change", at, first.Index)
	}
	as, err := s.c.Assignments(s.ctx, dest, first.Index, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range as.Networks[0].Members {
		if m.Instance == web.ID && m.Health != api.HealthUnhealthy {
			t.Errorf("the destination is told %s is %s, want unhealthy", web.ID, m.Health)
		}
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
	first, own, peer := twoPeers(t, s)
	answers := queryFrom(s, first.Index, time.Minute)
	reportUnhealthy(t, s, "node-2", peer)
	noAnswer(t, answers, first.Index, "a change of its peer alone")

	// Its own instance's record changes (node-1 reports it unhealthy):
	// that answers at once, with the peer's change.
	reportUnhealthy(t, s, "node-1", own)
	select {
	case as := <-answers:
		wantUnhealthyPeer(t, s, as, peer)
	case <-time.After(10 * time.Second):
		t.Fatal("node-1's query did not end when its own instance changed")
	}
}

// twoPeers deploys a role of two instances, one on node-1 and one on
// node-2, and returns node-1's assignments, its instance and its peer.
func twoPeers(t *testing.T, s *sim) (first api.Assignments, own, peer string) {
	t.Helper()
	s.deploy(webSpec(2, "1"))
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	first, err := s.c.Assignments(s.ctx, "node-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Instances) != 1 || len(peersOf(t, s, "node-1", first.Instances[0])) != 2 {
		t.Fatalf("node-1 assigned %+v, want one instance with two peers", first.Instances)
	}
	for _, p := range peersOf(t, s, "node-1", first.Instances[0]) {
		if p.Node == "node-2" {
			peer = p.ID
		}
	}
	return first, first.Instances[0].Instance.ID, peer
}

// queryFrom starts node-1's blocking query from index; its answer comes
// on the channel.
func queryFrom(s *sim, index uint64, wait time.Duration) <-chan api.Assignments {
	answers := make(chan api.Assignments, 1)
	go func() {
		as, err := s.c.Assignments(context.Background(), "node-1", index, wait)
		if err != nil {
			s.t.Error(err)
		}
		answers <- as
	}()
	return answers
}

// noAnswer fails if node-1's query answers within half a second.
func noAnswer(t *testing.T, answers <-chan api.Assignments, index uint64, what string) {
	t.Helper()
	select {
	case as := <-answers:
		t.Fatalf("node-1's query ended at once on %s (index %d -> %d)", what, index, as.Index)
	case <-time.After(500 * time.Millisecond):
	}
}

// reportUnhealthy has node report instance id running and unhealthy.
func reportUnhealthy(t *testing.T, s *sim, node, id string) {
	t.Helper()
	if _, err := s.c.Heartbeat(s.ctx, node, api.Heartbeat{Instances: []api.InstanceStatus{
		{ID: id, State: api.StateRunning, Health: api.HealthUnhealthy},
	}}); err != nil {
		t.Fatal(err)
	}
}

// wantUnhealthyPeer fails unless node-1's answer holds one instance whose
// peers show peer unhealthy.
func wantUnhealthyPeer(t *testing.T, s *sim, as api.Assignments, peer string) {
	t.Helper()
	if len(as.Instances) != 1 {
		t.Fatalf("answer %+v", as)
	}
	for _, p := range peersOf(t, s, "node-1", as.Instances[0]) {
		if p.ID == peer && p.Health != api.HealthUnhealthy {
			t.Errorf("peer %s health %s, want unhealthy", peer, p.Health)
		}
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
	first, own, peer := twoPeers(t, s)
	if _, err := s.c.Peers(s.ctx, "node-2", own); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("node-2 read the peers of node-1's instance: %v, want not found", err)
	}
	reportUnhealthy(t, s, "node-2", peer)
	next, err := s.c.Assignments(s.ctx, "node-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v := first.Instances[0].PeersVersion; next.Instances[0].PeersVersion == v {
		t.Errorf("peers version %s unchanged when a peer turned unhealthy", v)
	}
}
