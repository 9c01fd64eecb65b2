package fabric

import (
	"context"
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
