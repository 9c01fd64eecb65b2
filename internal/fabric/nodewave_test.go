package fabric

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftcloud/weft/api"
)

// downNodes counts the nodes the state has down.
func (s *sim) downNodes() int {
	n := 0
	for _, nd := range s.c.Nodes(s.ctx) {
		if nd.State == api.NodeDown {
			n++
		}
	}
	return n
}

// silence stops the first n nodes' heartbeats (node-1 to node-n).
func (s *sim) silence(n int) {
	for i := 1; i <= n; i++ {
		s.nodes[fmt.Sprintf("node-%d", i)].dead = true
	}
}

// silent counts the nodes whose heartbeats are stopped.
func (s *sim) silent() int {
	n := 0
	for _, nd := range s.nodes {
		if nd.dead {
			n++
		}
	}
	return n
}

// eventsOf returns the events of type typ told so far.
func (s *sim) eventsOf(typ string) []api.Event {
	all, _ := s.c.events.Since(0)
	var out []api.Event
	for _, e := range all {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestNodeLossesBelowTheWaveGuardHealAtOnce: a small cluster that loses
// most of its nodes, and a large one that loses a tenth, have every silent
// node declared down in the first pass past the TTL, as without the guard.
// A large one that loses most of them does not (the guard engages).
func TestNodeLossesBelowTheWaveGuardHealAtOnce(t *testing.T) {
	for _, tc := range []struct {
		nodes, silent, wantDown int
	}{
		{nodes: 3, silent: 2, wantDown: 2},
		{nodes: 40, silent: 30, wantDown: 30},
		{nodes: 60, silent: 6, wantDown: 6},
		{nodes: 60, silent: 15, wantDown: 15}, // a quarter: not more than DownWaveFraction
		{nodes: 60, silent: 16, wantDown: 1},  // more: the longest silent at once, the rest at the rate
	} {
		t.Run(fmt.Sprintf("%d of %d", tc.silent, tc.nodes), func(t *testing.T) {
			s := newSim(t, tc.nodes)
			s.step()
			s.silence(tc.silent)
			s.clock.Advance(s.c.cfg.HeartbeatTTL + 100*time.Millisecond)
			s.step()
			if got := s.downNodes(); got != tc.wantDown {
				t.Fatalf("%d nodes down in the first pass past the TTL, want %d", got, tc.wantDown)
			}
			if waves := s.eventsOf("nodes.wave"); (len(waves) > 0) != (tc.wantDown < tc.silent) {
				t.Fatalf("nodes.wave events %v with %d of %d declared down", waves, tc.wantDown, tc.silent)
			}
		})
	}
}

// TestNodeDownWaveIsDeclaredAtALimitedRate: when 70% of a 60-node fleet
// falls silent within a second, the nodes are declared down no faster than
// DownWaveRate a second, the longest silent first, and all of them in the
// end while the silence lasts, with no pass but those the guard's own
// wake-ups and its writes make due (the sim's timer tick is an hour). A
// persistent instance on a silent node moves only once the node has had
// its whole persistent grace to fence it, as without the guard.
func TestNodeDownWaveIsDeclaredAtALimitedRate(t *testing.T) {
	s := newVMSim(t, 60)
	s.deploy(persistentVM())
	s.settle(20, "the persistent VM running", func() bool { return s.healthyCurrent("db", "vm") == 1 })
	home := s.records("db")[0].Node
	// First 20 nodes, the persistent VM's among them, then 22 more half a
	// second later.
	first := map[string]bool{home: true}
	s.nodes[home].dead = true
	for i := 1; s.silent() < 42; i++ {
		if s.silent() == 20 {
			s.clock.Advance(500 * time.Millisecond)
			s.step()
		}
		name := fmt.Sprintf("node-%d", i)
		first[name] = first[name] || s.silent() < 20
		s.nodes[name].dead = true
	}
	seen, _ := s.c.lastSeen(home)
	s.clock.Advance(seen.ttl - 400*time.Millisecond) // the first 20 past their TTL, a third of the fleet
	start := s.clock.Now()
	rate := s.c.cfg.DownWaveRate
	for i := 0; s.downNodes() < 42; i++ {
		if i == 1000 {
			t.Fatalf("%d of the 42 silent nodes down after %s", s.downNodes(), s.clock.Now().Sub(start))
		}
		s.step()
		elapsed := s.clock.Now().Sub(start).Seconds()
		if got, most := s.downNodes(), 1+int(elapsed*rate); got > most {
			t.Fatalf("%d nodes declared down %.1fs into the wave; at most %d at %g a second", got, elapsed, most, rate)
		}
		firstDown := 0
		for _, n := range s.c.Nodes(s.ctx) {
			if n.State == api.NodeDown && first[n.Name] {
				firstDown++
			}
		}
		if firstDown < min(s.downNodes(), 20) {
			t.Fatalf("%d nodes down, only %d of them of the 20 silent longest", s.downNodes(), firstDown)
		}
		if in := s.records("db"); len(in) != 1 || in[0].Node != home {
			if h, _ := s.c.lastSeen(home); h.silence(s.clock.Now()) <= persistentGrace(h.ttl) {
				t.Fatalf("the persistent instance left its node %s silent for %s, before its persistent grace", home, h.silence(s.clock.Now()))
			}
		}
		s.clock.Advance(100 * time.Millisecond)
	}
	if elapsed := s.clock.Now().Sub(start).Seconds(); elapsed < 41/rate {
		t.Fatalf("42 nodes down in %.1fs, faster than %g a second", elapsed, rate)
	}
	if n := testutil.ToFloat64(s.c.figures.wavePasses.WithLabelValues(waveLimited)); n < 20 {
		t.Fatalf("%g passes counted with the guard engaged, want one for each of the 20 s or so it took", n)
	}
	s.settle(50, "the persistent VM running elsewhere", func() bool {
		in := s.records("db")
		return len(in) == 1 && in[0].Node != home && s.healthyCurrent("db", "vm") == 1
	})
	if w, over := s.eventsOf("nodes.wave"), s.eventsOf("nodes.wave.over"); len(w) != 1 || len(over) != 1 {
		t.Fatalf("events nodes.wave %v and nodes.wave.over %v; want one of each", w, over)
	}
	if n, counted := len(s.eventsOf("node.down")), testutil.ToFloat64(s.c.figures.nodesDown); n != 42 || counted != 42 {
		t.Fatalf("%d node.down events, %g counted; want 42", n, counted)
	}
}

// TestNodeDownWaveIsSeenWhileItBreaks: the nodes of a wave fall silent at
// different moments of their heartbeat interval, and a pass runs as soon
// as the first crosses its TTL, when the others have not yet: the guard
// counts those that missed a heartbeat too, so the first slice of the wave
// is not declared down at once.
func TestNodeDownWaveIsSeenWhileItBreaks(t *testing.T) {
	s := newSim(t, 60)
	s.step()
	for g := range 6 { // six slices of 7 nodes, 100ms apart
		for i := 1; i <= 7; i++ {
			s.nodes[fmt.Sprintf("node-%d", g*7+i)].dead = true
		}
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	for s.downNodes() == 0 {
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	if n := s.downNodes(); n != 1 {
		t.Fatalf("%d nodes declared down in the first pass past the first slice's TTL; want the longest silent alone", n)
	}
}

// TestNodeDownWaveOfNodesFallingSilentOneByOne: a wave slower than one
// heartbeat interval, a node every 100ms: the first are declared down as
// they cross their TTL, until those declared within a TTL and the late
// ones are more than the fraction; from then on no faster than the rate,
// though the guard sees one new node past its TTL at a time.
func TestNodeDownWaveOfNodesFallingSilentOneByOne(t *testing.T) {
	s := newSim(t, 60)
	s.step()
	rate := s.c.cfg.DownWaveRate
	var engaged time.Time
	downAt := 0
	for i := 1; i < 400; i++ {
		if i <= 42 {
			s.nodes[fmt.Sprintf("node-%d", i)].dead = true
		}
		s.step()
		down := s.downNodes()
		if engaged.IsZero() && len(s.eventsOf("nodes.wave")) > 0 {
			engaged, downAt = s.clock.Now(), down
			if down > 20 {
				t.Fatalf("the guard engaged only once %d of the 42 were down", down)
			}
		}
		if !engaged.IsZero() {
			elapsed := s.clock.Now().Sub(engaged).Seconds()
			if most := downAt + 1 + int(elapsed*rate); down > most {
				t.Fatalf("%d nodes down %.1fs after the guard engaged with %d; at most %d at %g a second", down, elapsed, downAt, most, rate)
			}
		}
		s.clock.Advance(100 * time.Millisecond)
	}
	if engaged.IsZero() {
		t.Fatal("the guard never engaged")
	}
	if n := s.downNodes(); n != 42 {
		t.Fatalf("%d of the 42 silent nodes down after 40s", n)
	}
}

// TestNodeDownWaveOfAllNodesDeclaresNone: when every node of a large fleet
// falls silent (the controller starved, or its network cut), none is
// declared down, however long it lasts; when their heartbeats come back,
// every instance still runs where it ran and nothing was replaced.
func TestNodeDownWaveOfAllNodesDeclaresNone(t *testing.T) {
	s := newSim(t, 60)
	s.deploy(webSpec(60, "1"))
	s.settle(30, "60 healthy", func() bool { return s.healthyCurrent("hello", "web") == 60 })
	before := map[string]string{}
	for _, in := range s.records("hello") {
		before[in.ID] = in.Node
	}
	placed := testutil.ToFloat64(s.c.figures.placed)
	s.silence(60)
	for range 100 { // 50 s: many TTLs and persistent graces
		s.clock.Advance(500 * time.Millisecond)
		s.step()
		if n := s.downNodes(); n != 0 {
			t.Fatalf("%d nodes declared down while all were silent", n)
		}
	}
	if held := s.c.wave.held; held != 60 || s.c.wave.mode != waveHalted || testutil.ToFloat64(s.c.figures.waveHeld) != 60 {
		t.Fatalf("guard %+v; want 60 nodes held, halted", s.c.wave)
	}
	for _, n := range s.nodes {
		n.dead = false
	}
	s.settle(40, "the guard let go", func() bool { return s.c.wave.mode == waveOff })
	after := map[string]string{}
	for _, in := range s.records("hello") {
		after[in.ID] = in.Node
	}
	if len(after) != len(before) {
		t.Fatalf("%d instances after the silence, %d before", len(after), len(before))
	}
	for id, node := range before {
		if after[id] != node {
			t.Errorf("instance %s on %q after the silence, on %s before", id, after[id], node)
		}
	}
	if n := testutil.ToFloat64(s.c.figures.placed); n != placed {
		t.Errorf("%g placements during the silence", n-placed)
	}
	if lost := s.eventsOf("instance.lost"); len(lost) != 0 {
		t.Errorf("instances lost: %v", lost)
	}
	if w, over := s.eventsOf("nodes.wave"), s.eventsOf("nodes.wave.over"); len(w) != 1 || len(over) != 1 {
		t.Fatalf("events nodes.wave %v and nodes.wave.over %v; want one of each", w, over)
	}
}
