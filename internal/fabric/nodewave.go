package fabric

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/weftcloud/weft/api"
)

// The node-down wave guard. A node is declared down once silent for its
// TTL (checkNodes). When the controller itself is starved (a GC pause, a
// slow disk, a CPU it shares) or its network is cut, every node looks
// silent at once, though none is down: at 1,000 nodes on a loaded machine
// the controller declared 8,757 nodes down in 4 minutes of a deploy, each
// time replacing their instances, and the fleet never settled
// (BENCHMARKS.md, "Heal2 branch"). Kubernetes' node lifecycle controller
// guards against the same: in a zone with more than
// --unhealthy-zone-threshold (55%) of its nodes not ready it evicts
// at --secondary-node-eviction-rate (one node in 100 s) in clusters of
// more than --large-cluster-size-threshold (50) nodes, not at all in
// smaller ones, and not at all in a zone whose every node is not ready
// (full disruption). Weft's guard, in each pass, counts the nodes that
// look silent: those not down that missed a heartbeat (silent for longer
// than their TTL less one interval, late), and those it declared down
// within their TTL that stayed silent (recentlyDown), out of both and the
// other nodes not down. Then:
//
//   - Config.DownWaveNodes nodes or fewer, or no more than
//     Config.DownWaveFraction of them silent: every node silent past its
//     TTL is declared down at once, as without the guard.
//   - More than that fraction of a fleet that large: the controller
//     suspects itself rather than the nodes, and declares those past
//     their TTL down at most Config.DownWaveRate a second, the longest
//     silent first. Once engaged the guard stays engaged, whatever the
//     fleet's size, until no node is held back (each declared, or heard
//     again) and no more than the fraction looks silent: without that,
//     the silent nodes left after the first declarations would fall
//     below the fraction and be declared at once.
//   - Config.DownWaveHalt of them or more silent: none is declared down.
//     The likely fault is the controller or its network; and were every
//     node really gone there would be nowhere to put their instances.
//
// Counting the late nodes, not only those past their TTL, matters: the
// nodes of a wave cross their TTL over one heartbeat interval (each
// reported at its own moment of it), and a pass runs as soon as the first
// crosses (passgate.go), so a pass counting only those past the TTL saw a
// slice of the wave, under the fraction, and declared it at once (60
// nodes, 42 of them cut off for 10 s: all 42 declared down). The recently
// down count a wave that grows over more than one interval (a controller
// starving by degrees).
//
// Why these defaults:
//
//   - DownWaveNodes 50, as Kubernetes' large-cluster threshold: a
//     development cluster of 3 nodes, or a small one of 40, that loses
//     most of its nodes heals at once as it always did; its controller
//     serves so few heartbeats that its starvation is not what silences
//     them.
//   - DownWaveFraction 0.25: above the share of one fault domain in any
//     fleet of more than four (the fleet harness spreads its nodes over
//     ten), and 2.5 times the 10% loss that BENCHMARKS.md's goal heals in
//     10 s, so a real loss of a rack or of 10% of the nodes, with a few
//     more slow at the same time, still heals at once. In the collapses
//     BENCHMARKS.md records, 11% to 83% of 1,000 nodes were down at a
//     time: the guard misses the smallest. Lower than Kubernetes' 55%: a Weft
//     node declared down has all its instances replaced at once, where a
//     Kubernetes eviction waits out each pod's toleration.
//   - DownWaveRate 2 a second: at the 20 instances a node of the 1,000-
//     node goal fleet, 40 placements a second, about what this controller
//     placed in that fleet's deploy on 2 shared cores (20,000 in some six
//     minutes); so a wave it misjudges cannot pile churn faster than it
//     places, and a real loss of a third of 1,000 nodes, were it taken
//     for a wave, still heals in under three minutes. Kubernetes' one
//     node in 100 s suits evictions that are themselves delayed; ours are
//     the whole heal.
//   - DownWaveHalt 0.9: "nearly all". A starved controller or a cut
//     network silences every node; 90% leaves room for a few nodes whose
//     heartbeats were being taken, or that share the controller's side of
//     the cut, without counting a loss of most of the fleet as one.
//
// A node held back is only declared down later, which is the safe
// direction for persistent instances: the agent fences itself on its own
// timer, and fenced (persistentGrace) counts from when the controller last
// heard from the node, however late it was declared down.
//
// What the guard cannot tell apart: a wave that silences nodes a few at a
// time, each time fewer than the fraction, over longer than their TTL, is
// not seen as one; nor is a real loss of more than the fraction from a
// wave (it heals at the rate).

// waveGuard is what the guard carries from one pass to the next.
type waveGuard struct {
	mode string // waveOff, waveLimited or waveHalted
	// tokens is how many nodes may be declared down now (waveLimited),
	// counted at at, the last pass the guard limited; it grows by
	// Config.DownWaveRate a second, up to one second's worth.
	tokens float64
	at     time.Time
	since  time.Time // when the guard engaged
	held   int       // silent nodes the pass held back
	downed int       // nodes declared down while engaged
}

// The guard's modes (the mode label of weft_fabric_down_wave_passes_total).
const (
	waveOff     = ""
	waveLimited = "limited" // declaring at Config.DownWaveRate
	waveHalted  = "halted"  // declaring none
)

// silentNode is a node silent past its TTL in a pass.
type silentNode struct {
	name    string
	seen    nodeSeen
	silence time.Duration
}

// waveCount is what a pass saw of the nodes' silences (checkNodes).
type waveCount struct {
	nodes   int          // ready nodes, and the recently down (recentlyDown)
	suspect int          // of those, the late (late) and the recently down
	silent  []silentNode // ready nodes silent past their TTL
}

// down counts a node that is down: recent, declared down within its TTL
// and silent since (recentlyDown).
func (w *waveCount) down(recent bool) {
	if recent {
		w.nodes++
		w.suspect++
	}
}

// ready counts a node not down, as seen at now.
func (w *waveCount) ready(name string, seen nodeSeen, now time.Time) {
	w.nodes++
	if late(seen, now) {
		w.suspect++
	}
	if silence := seen.silence(now); silence > seen.ttl {
		w.silent = append(w.silent, silentNode{name: name, seen: seen, silence: silence})
	}
}

// late says whether a node has been silent for longer than its TTL less
// one of its intervals: it missed a heartbeat, and crosses its TTL within
// an interval. The nodes of a wave cross their TTL over one heartbeat
// interval (they reported at different moments of it), and a pass runs as
// soon as one crosses (passgate.go): counting only the nodes past their
// TTL, each pass saw a slice of the wave, and slices below the fraction
// were declared down at once. A node that reports as told is silent for
// about one interval at most.
func late(s nodeSeen, now time.Time) bool {
	interval := s.told
	if interval <= 0 {
		interval = s.ttl / ttlIntervals
	}
	return s.silence(now) > s.ttl-interval
}

// recentlyDown says whether node was declared down by this controller
// within its TTL and has stayed silent since: part of a wave that may
// still be breaking (a controller starving by degrees silences its nodes
// over more than one interval).
func (p *pass) recentlyDown(node string) bool {
	at, ok := p.c.declared[node]
	seen, heard := p.c.lastSeen(node)
	return ok && heard && p.now.Sub(at) <= seen.ttl && seen.silence(p.now) > seen.ttl
}

// limitWave returns which of the silent nodes the pass declares down, and
// notes what the guard becomes in p.wave.
func (p *pass) limitWave(w waveCount) []silentNode {
	cfg, prev, silent := p.c.cfg, p.c.wave, w.silent
	next := prev
	frac := float64(w.suspect) / float64(max(w.nodes, 1))
	switch {
	case prev.mode == waveOff && (len(silent) == 0 || w.nodes <= cfg.DownWaveNodes || frac <= cfg.DownWaveFraction):
		next.mode = waveOff
	case prev.mode != waveOff && len(silent) == 0 && frac <= cfg.DownWaveFraction:
		next.mode = waveOff // nothing held back, and what looks silent is no wave
	case frac >= cfg.DownWaveHalt:
		next.mode = waveHalted
	default:
		next.mode = waveLimited
	}
	if prev.mode == waveOff {
		next.since, next.downed = p.now, 0
	}
	down := silent
	switch next.mode {
	case waveHalted:
		down = nil
		// Nothing to count while halted: the nodes that come back end it,
		// and a pass then (their heartbeats, the state moving) or one a
		// TTL on decides what the rest are.
		if len(silent) > 0 {
			p.wakeAt(p.now.Add(slices.MinFunc(silent, func(a, b silentNode) int { return cmp.Compare(a.seen.ttl, b.seen.ttl) }).seen.ttl))
		}
	case waveLimited:
		// The bucket keeps what it holds while the guard is off, and a
		// wave's first declaration comes at once but no burst: a guard
		// that lets go and engages again pass after pass gets no more
		// than the rate.
		burst := max(1, cfg.DownWaveRate)
		if prev.mode == waveOff {
			burst = 1
		}
		if next.at.IsZero() {
			next.tokens, next.at = 1, p.now
		}
		next.tokens = min(next.tokens+p.now.Sub(next.at).Seconds()*cfg.DownWaveRate, burst)
		next.at = p.now
		slices.SortFunc(silent, func(a, b silentNode) int {
			return cmp.Or(cmp.Compare(b.silence, a.silence), cmp.Compare(a.name, b.name))
		})
		down = silent[:min(int(next.tokens), len(silent))]
		next.tokens -= float64(len(down))
		next.downed += len(down)
		if len(down) < len(silent) {
			p.wakeAt(p.now.Add(time.Duration((1 - next.tokens) / cfg.DownWaveRate * float64(time.Second))))
		}
	}
	next.held = len(silent) - len(down)
	if next.mode != waveOff && next.held == 0 {
		// Engaged with nothing held back: a pass once the recently down
		// count no more (a TTL on, at most) lets go.
		p.wakeAt(p.now.Add(cfg.HeartbeatTTL))
	}
	p.waveEvent(prev, next, w)
	p.wave = &next
	return down
}

// waveEvent tells when the guard engages, changes mode or lets go: once,
// not once a node. (The event log logs it too.)
func (p *pass) waveEvent(prev, next waveGuard, w waveCount) {
	if prev.mode == next.mode {
		return
	}
	e := api.Event{Type: "nodes.wave", Level: "warn"}
	switch next.mode {
	case waveOff:
		e = api.Event{Type: "nodes.wave.over", Message: fmt.Sprintf("no silent node held back any more, %s after the wave began (%d declared down meanwhile): nodes are declared down at once again",
			p.now.Sub(next.since).Round(time.Second), next.downed)}
	case waveHalted:
		e.Message = fmt.Sprintf("%d of %d nodes silent: declaring none down while nearly all are (the controller or its network is the likely fault)", w.suspect, w.nodes)
	case waveLimited:
		e.Message = fmt.Sprintf("%d of %d nodes silent at once: declaring those past their TTL down at most %g a second, the longest silent first", w.suspect, w.nodes, p.c.cfg.DownWaveRate)
	}
	p.event(e)
}

// nodesChecked counts the nodes a pass that was written declared down,
// keeps when (recentlyDown), and keeps what the wave guard became in it.
// Under c.mu (commitPass).
func (c *Controller) nodesChecked(p *pass) {
	c.figures.nodesDown.Add(float64(len(p.downed)))
	w := p.wave
	if w == nil {
		return // the pass did not check the nodes
	}
	c.wave = *w
	c.figures.waveHeld.Set(float64(w.held))
	if w.mode != waveOff {
		c.figures.wavePasses.WithLabelValues(w.mode).Inc()
	}
	if c.declared == nil {
		c.declared = map[string]time.Time{}
	}
	for _, node := range p.downed {
		c.declared[node] = p.now
	}
	for node, at := range c.declared {
		if seen, ok := c.lastSeen(node); !ok || p.now.Sub(at) > seen.ttl {
			delete(c.declared, node)
		}
	}
}
