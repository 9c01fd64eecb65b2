package fabric

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestHeartbeatIntervalGrowsWithTheFleet: past HeartbeatRate ×
// HeartbeatInterval nodes the controller tells its nodes to report less
// often, so the fleet sends about HeartbeatRate heartbeats a second, and
// gives each node three of its intervals before it is declared down: a
// node reporting as told is never declared down, however many there are.
// A node told a shorter interval keeps the longer TTL until its next
// heartbeat, since it may not have heard.
func TestHeartbeatIntervalGrowsWithTheFleet(t *testing.T) {
	s := newSim(t, 3)
	s.c.cfg.HeartbeatRate = 10 // up to 5 nodes at 500ms
	beat := func(node string) api.HeartbeatReply {
		t.Helper()
		reply, err := s.c.Heartbeat(s.ctx, node, api.Heartbeat{})
		if err != nil {
			t.Fatal(err)
		}
		return reply
	}
	if r := beat("node-1"); time.Duration(r.Interval) != 500*time.Millisecond || time.Duration(r.Fence) != 2*2*time.Second {
		t.Fatalf("3 nodes: told interval %s, fence %s; want 500ms (the configured one) and two 2s TTLs", r.Interval, r.Fence)
	}
	for i := 4; i <= 40; i++ {
		s.addNode(fmt.Sprintf("node-%d", i), fmt.Sprintf("fd%d", i), 4)
	}
	s.step()
	if r := beat("node-1"); time.Duration(r.Interval) != 4*time.Second || time.Duration(r.Fence) != 2*12*time.Second {
		t.Fatalf("40 nodes at 10 a second: told interval %s, fence %s; want 4s and two TTLs of three intervals (12s)", r.Interval, r.Fence)
	}
	for _, n := range s.nodes {
		beat(n.name)
		n.dead = true
	}
	s.clock.Advance(11 * time.Second) // far past the configured TTL (2s), within three intervals
	s.step()
	if n := s.downNodes(); n != 0 {
		t.Fatalf("%d of 40 nodes declared down 11s after their last heartbeat, told to report every 4s", n)
	}
	// The rate goes up: node-1 is told 500ms, but keeps the 12s TTL until
	// it is heard again.
	s.c.cfg.HeartbeatRate = 1000
	if r := beat("node-1"); time.Duration(r.Interval) != 500*time.Millisecond {
		t.Fatalf("told %s; want 500ms", r.Interval)
	}
	s.clock.Advance(11 * time.Second)
	s.step()
	if n, _ := s.c.Node(s.ctx, "node-1"); n.State == api.NodeDown {
		t.Fatal("node-1 declared down before it could hear that it is to report more often")
	}
	if n := s.downNodes(); n != 39 {
		t.Fatalf("%d of the 39 silent nodes declared down 22s after their last heartbeat; want all", n)
	}
	beat("node-1")
	s.clock.Advance(2100 * time.Millisecond)
	s.step()
	if n, _ := s.c.Node(s.ctx, "node-1"); n.State != api.NodeDown {
		t.Fatalf("node-1 is %s 2.1s after its last heartbeat, told 500ms twice; want down (TTL 2s)", n.State)
	}
}
