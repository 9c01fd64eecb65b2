package fabric

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftcloud/weft/api"
)

// roleView is what the rebalancing tests watch of a role at each step.
type roleView struct {
	serving int            // desired running, not draining, healthy: in the load balancer
	moving  int            // instances leaving for a replacement
	perFD   map[string]int // live instances per fault domain
	records int
}

func (s *sim) view(service, role string) roleView {
	v := roleView{perFD: map[string]int{}}
	for _, in := range s.records(service) {
		if in.Role != role {
			continue
		}
		v.records++
		if in.Desired == api.DesiredRunning && !in.Draining && in.healthy() {
			v.serving++
		}
		if in.Evicting {
			v.moving++
		}
		if in.live() {
			v.perFD[in.FaultDomain]++
		}
	}
	return v
}

func (s *sim) countEvents(typ string) int {
	events, _ := s.c.Events().Since(0)
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// A role deployed while one node was up (weft dev before its other agents
// registered) sits in one fault domain. When nodes in other fault domains
// appear its instances move onto them, one at a time, each replacement
// healthy before the instance it replaces stops, until each domain holds
// one.
func TestRebalanceSpreadsARoleForcedOntoOneFaultDomain(t *testing.T) {
	s := newSim(t, 1)
	s.deploy(webSpec(4, "1"))
	s.settle(20, "4 healthy on node-1", func() bool { return s.healthyCurrent("hello", "web") == 4 })
	if v := s.view("hello", "web"); v.perFD["fd1"] != 4 {
		t.Fatalf("want the 4 instances in fd1 to start with, got %v", v.perFD)
	}
	for i := 2; i <= 4; i++ {
		s.addNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("fd%d", i), 4)
	}
	spread := false
	for step := 0; step < 200 && !spread; step++ {
		v := s.view("hello", "web")
		if v.serving < 4 {
			t.Fatalf("step %d: %d instances serving, want at least the 4 it started with:\n%s", step, v.serving, s.dump())
		}
		if v.moving > 1 {
			t.Fatalf("step %d: %d instances moving at once, want one at a time:\n%s", step, v.moving, s.dump())
		}
		spread = v.records == 4 && len(v.perFD) == 4
		for _, n := range v.perFD {
			spread = spread && n == 1
		}
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	if !spread {
		t.Fatalf("the role did not spread over the 4 fault domains:\n%s", s.dump())
	}
	if n := s.countEvents("instance.rebalancing"); n != 3 {
		t.Errorf("%d moves, want 3 (one instance into each new fault domain)", n)
	}
	// Spread as far as it goes: nothing more moves.
	for range 20 {
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	if n := s.countEvents("instance.rebalancing"); n != 3 {
		t.Errorf("%d moves once spread, want no more than the 3", n)
	}
	if n := testutil.ToFloat64(s.c.figures.moves); n != 3 {
		t.Errorf("weft_fabric_rebalance_moves_total = %v, want 3", n)
	}
}

// A move whose replacement never becomes healthy (its node dies) is given
// up: the original keeps serving, and the role does not try again at once.
func TestRebalanceGivesUpAMoveWhoseReplacementIsLost(t *testing.T) {
	s := newSim(t, 1)
	s.deploy(webSpec(2, "1"))
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	before := map[string]bool{}
	for _, in := range s.records("hello") {
		before[in.ID] = true
	}
	s.addNode("node-2", "fd2", 4)
	s.nodes["node-2"].dead = true // registered, then never runs what it is given
	s.settle(5, "a move under way", func() bool { return s.view("hello", "web").moving == 1 })
	s.clock.Advance(s.c.cfg.HeartbeatTTL)
	s.settle(20, "the move given up", func() bool {
		v := s.view("hello", "web")
		return v.moving == 0 && v.records == 2
	})
	for _, in := range s.records("hello") {
		if !before[in.ID] || in.Node != "node-1" || !in.live() {
			t.Errorf("instance %s on %s (live %v) after the move was given up, want the originals on node-1:\n%s", in.ID, in.Node, in.live(), s.dump())
		}
	}
	if n := s.countEvents("instance.rebalance-failed"); n != 1 {
		t.Errorf("%d instance.rebalance-failed events, want 1", n)
	}
}
