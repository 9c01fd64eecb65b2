package fabric

import (
	"time"
)

// Node liveness: how often the nodes report and how long a silent one
// stays up both grow with the fleet, so that the heartbeats a controller
// takes stay bounded however many nodes there are.
//
// Every node reports at the interval the controller tells it in each
// heartbeat reply: Config.HeartbeatInterval while the fleet is small, and
// past Config.HeartbeatRate × HeartbeatInterval nodes, nodes ÷
// HeartbeatRate, so that the whole fleet sends about HeartbeatRate
// heartbeats a second. A node is declared down once silent for its TTL:
// Config.HeartbeatTTL, or ttlIntervals of the interval it was told,
// whichever is longer. With fixed timings, 1,000 nodes at 500 ms sent
// 2,000 heartbeats a second, more than the controller could take, and
// the ones left waiting were declared down in waves.

// ttlIntervals is how many intervals a node may stay silent, at least,
// before it is declared down.
const ttlIntervals = 3

// heartbeatTiming is the interval nodes are told and the TTL it implies
// when the controller knows n nodes.
func (c *Controller) heartbeatTiming(n int) (interval, ttl time.Duration) {
	interval = c.cfg.HeartbeatInterval
	if byRate := time.Duration(float64(n) / c.cfg.HeartbeatRate * float64(time.Second)); byRate > interval {
		interval = byRate.Round(time.Millisecond)
	}
	return interval, c.ttlFor(interval)
}

// ttlFor is the TTL of a node told to report every interval.
func (c *Controller) ttlFor(interval time.Duration) time.Duration {
	return max(c.cfg.HeartbeatTTL, ttlIntervals*interval)
}

// nodeSeen is what the controller knows of a node's heartbeats, in memory
// only: when it last heard from it, and how long it may stay silent.
type nodeSeen struct {
	at  time.Time
	ttl time.Duration
	// told is the interval the node was last told (0: not told yet).
	told time.Duration
	// taking counts the node's heartbeats that arrived and are not
	// answered yet (heardFrom, answered).
	taking int
}

// silence is how long the node has been silent at now: nothing while one
// of its heartbeats is being taken. A node waits for each reply before it
// sends its next heartbeat, so replies held up by a busy controller (a
// batch waiting for the lock behind a pass's write, its fsync) left nodes
// that reported every interval silent for longer than a 3 s TTL: at 1,000
// nodes they were declared down by the thousand while the fleet deployed.
func (s nodeSeen) silence(now time.Time) time.Duration {
	if s.taking > 0 {
		return 0
	}
	return now.Sub(s.at)
}

// markSeen records that node was heard from at t. A node heard for the
// first time gets the TTL of the fleet as it is.
func (c *Controller) markSeen(node string, t time.Time) {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	s, ok := c.seen[node]
	if !ok {
		_, s.ttl = c.heartbeatTiming(len(c.seen) + 1)
	}
	s.at = t
	c.seen[node] = s
}

// markFirstSeen records node, not heard from by this process yet, as seen
// at t with two TTLs of the fleet as it is: after a leader change every
// agent must find the new leader, and at 1,000 nodes on a loaded machine
// some took longer than one TTL (through the dead leader's refusals and
// the election's 503s) and were declared down, their instances replaced.
// The reply to its first heartbeat sets its TTL back (tellInterval).
func (c *Controller) markFirstSeen(node string, t time.Time) {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	if _, ok := c.seen[node]; ok {
		return
	}
	_, ttl := c.heartbeatTiming(len(c.seen) + 1)
	c.seen[node] = nodeSeen{at: t, ttl: 2 * ttl}
}

// heardFrom records that a heartbeat of node arrived at t; answered, that
// it was answered at t. A heartbeat arrived counts in full at once, however
// long it then waits to be taken; the node stays heard from until the
// answer (nodeSeen.silence).
func (c *Controller) heardFrom(node string, t time.Time) {
	c.markSeen(node, t)
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	s := c.seen[node]
	s.taking++
	c.seen[node] = s
}

func (c *Controller) answered(node string, t time.Time) {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	s, ok := c.seen[node]
	if !ok {
		return
	}
	s.taking = max(0, s.taking-1)
	s.at = t
	c.seen[node] = s
}

// tellInterval is the interval to tell node in reply to its heartbeat, and the
// fence time that goes with it (HeartbeatReply). The node's TTL becomes
// that of the longer of this interval and the one it was told before: a
// node that missed this reply still reports at the old one.
func (c *Controller) tellInterval(node string) (interval, fence time.Duration) {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	s := c.seen[node]
	interval, s.ttl = c.heartbeatTiming(len(c.seen))
	if s.told > 0 {
		s.ttl = max(s.ttl, c.ttlFor(s.told))
	}
	s.told = interval
	c.seen[node] = s
	return interval, fenceAfter(s.ttl)
}

// lastSeen is when node was last heard from and how long it may stay
// silent from then.
func (c *Controller) lastSeen(node string) (nodeSeen, bool) {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	s, ok := c.seen[node]
	return s, ok
}

// A persistent instance must never run twice, so the controller starts one
// elsewhere only after its old node has had time to stop it: an agent kills
// its persistent instances fenceAfter from when it sent the last heartbeat
// the controller answered, and the controller replaces them once
// persistentGrace has passed since it last heard from the node, which is
// no earlier than that heartbeat was sent. (Counted from the reply, the
// agent's clock started late by however long the reply took: a reply
// slower than ttl/2 broke the rule, a margin that shrinks with the TTL.)
// Both are multiples of the node's heartbeat TTL, so that a leader election
// shorter than twice the TTL kills nothing; ephemeral instances are
// replaced as soon as the node is declared down, after one TTL.
func fenceAfter(ttl time.Duration) time.Duration { return 2 * ttl }

func persistentGrace(ttl time.Duration) time.Duration { return fenceAfter(ttl) + ttl/2 }

// silenceCrossed says whether a node's silence crossed its TTL or its
// persistent grace between since and now: a pass at since saw it within
// (checkNodes and fenced count a silence longer than the limit), one at
// now would not.
func (c *Controller) silenceCrossed(since, now time.Time) bool {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	for _, s := range c.seen {
		if s.taking > 0 {
			continue // not silent; answered, it counts from then
		}
		for _, limit := range []time.Duration{s.ttl, persistentGrace(s.ttl)} {
			if end := s.at.Add(limit); !end.Before(since) && end.Before(now) {
				return true
			}
		}
	}
	return false
}
