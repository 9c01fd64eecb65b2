package fabric

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftcloud/weft/api"
)

// TestPassRunsOnlyWhenDue: with nothing written and no node silent past a
// limit, the loop's ticks run no pass; a write, a node's silence crossing
// its TTL, then its persistent grace, each start one, and what they decide
// is what a pass on every tick decided (the timer tick is off here, so
// nothing else could have started them). The pass's own timers (drain,
// upgrade and stop-notice timeouts...) are checked by the tests of each,
// which run with the timer tick off too.
func TestPassRunsOnlyWhenDue(t *testing.T) {
	s := newVMSim(t, 2) // the timer tick off (newSim)
	s.deploy(persistentVM())
	s.deploy(webSpec(2, "1"))
	s.settle(20, "all running", func() bool {
		return s.healthyCurrent("hello", "web") == 2 && s.healthyCurrent("db", "vm") == 1
	})
	passes := func(why string) float64 { return testutil.ToFloat64(s.c.figures.passes.WithLabelValues(why)) }
	skipped := func() float64 { return testutil.ToFloat64(s.c.figures.skipped) }

	// Settled: the pass after the last write writes nothing, and then the
	// ticks skip.
	s.step()
	s.step()
	before := skipped()
	for range 5 {
		s.step()
		s.clock.Advance(100 * time.Millisecond)
	}
	if n := skipped() - before; n != 5 {
		t.Fatalf("%v of 5 idle ticks skipped", n)
	}

	// A write starts one.
	changed := passes(passChanged)
	s.deploy(webSpec(3, "1"))
	s.step()
	if passes(passChanged) == changed {
		t.Fatal("no pass after a deploy")
	}
	s.settle(20, "3 web running", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	s.step()
	s.step()

	// A node goes silent: nothing is due until its TTL has passed, and the
	// tick after that declares it down.
	home := s.records("db")[0].Node
	s.nodes[home].dead = true
	seen, _ := s.c.lastSeen(home)
	silence := passes(passSilence)
	s.clock.Advance(seen.ttl - 100*time.Millisecond)
	s.step()
	if passes(passSilence) != silence {
		t.Fatalf("a pass for a silence shorter than the TTL")
	}
	s.clock.Advance(200 * time.Millisecond)
	s.step()
	if passes(passSilence) != silence+1 {
		t.Fatalf("no pass once the silence passed the TTL")
	}
	if n, _ := s.c.Node(s.ctx, home); n.State != api.NodeDown {
		t.Fatalf("node %s is %s after its TTL", home, n.State)
	}
	s.settle(20, "the web instances replaced", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	if in := s.records("db")[0]; in.Node != home {
		t.Fatalf("the persistent instance moved to %s before its node could fence", in.Node)
	}
	s.step()
	s.step()

	// Its persistent instance moves once the grace has passed, with
	// nothing written meanwhile.
	s.clock.Advance(seen.at.Add(persistentGrace(seen.ttl)).Sub(s.clock.Now()) + 100*time.Millisecond)
	s.settle(20, "the persistent instance running elsewhere", func() bool {
		in := s.records("db")
		return len(in) == 1 && in[0].Node != home && s.healthyCurrent("db", "vm") == 1
	})
	if passes(passSilence) != silence+2 {
		t.Errorf("%v passes for silences; want 2 (the TTL, the grace)", passes(passSilence)-silence)
	}

	// The timer tick: a pass at least that often, whatever else.
	s.step()
	s.step()
	s.c.cfg.TimerTick = time.Second
	timer := passes(passTimer)
	s.clock.Advance(time.Second)
	s.step()
	if passes(passTimer) != timer+1 {
		t.Error("no pass after the timer tick")
	}
}
