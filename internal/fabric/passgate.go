package fabric

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A pass over a large fleet with nothing to do still reads and sorts every
// instance: at 20,000 instances the idle pass of every 200 ms tick took more
// than half of the controller's CPU (BENCHMARKS.md, "Controller at scale").
// What a pass decides depends only on the state and the time, so one run
// when neither moved would decide nothing new. Each tick therefore runs a
// pass only when
//
//   - something was written to the state since the last pass began (its
//     index moved; the write of a pass itself included, so the pass after a
//     write always runs),
//   - a node's silence crossed its TTL or its persistent grace since then
//     (the heartbeat times are kept in memory, not in the state),
//   - one of the pass's own timers the last pass found running has ended
//     (drain, upgrade, migration and move timeouts, stop notices, the
//     retries of failed moves and migrations: pass.wakeAt),
//   - something asked for one (poke), or the last pass failed, or
//   - Config.TimerTick has passed since the last pass, for any timer a
//     step does not tell wakeAt about.

// passGate is what the Run loop knows of the last pass.
type passGate struct {
	ran   bool      // a pass ran and succeeded in this term (Run)
	index uint64    // the state's index when it began
	at    time.Time // the time it began
	asked bool      // a pass was asked for (poke) since
	wake  time.Time // when the first timer it found running ends (pass.wakeAt)
}

// Why a tick ran a pass (the why label of weft_fabric_reconcile_passes_total).
const (
	passFirst   = "first"   // the first of this term, or the one after a failure
	passChanged = "changed" // the state moved
	passSilence = "silence" // a node's silence crossed its TTL or persistent grace
	passAsked   = "asked"   // poke
	passTimer   = "timer"   // a timer of the last pass ended, or Config.TimerTick passed
)

// due says whether a tick at now, when the state is at index, runs a pass,
// and why; "" when it is skipped.
func (c *Controller) due(g *passGate, index uint64, now time.Time) string {
	switch {
	case !g.ran:
		return passFirst
	case index != g.index:
		return passChanged
	case c.silenceCrossed(g.at, now):
		return passSilence
	case g.asked:
		return passAsked
	case !g.wake.IsZero() && !now.Before(g.wake):
		return passTimer
	case now.Sub(g.at) >= c.cfg.TimerTick:
		return passTimer
	}
	return ""
}

// tick runs a reconcile pass, and the auto-upgrade after it, when one is
// due (due).
func (c *Controller) tick(ctx context.Context, g *passGate) error {
	index, now := c.store.Index(), c.now()
	why := c.due(g, index, now)
	if why == "" {
		c.figures.skipped.Inc()
		return nil
	}
	c.figures.passes.WithLabelValues(why).Inc()
	err := c.reconcile(ctx)
	if upErr := c.autoUpgrade(ctx); upErr != nil {
		err = errors.Join(err, fmt.Errorf("auto-upgrade: %w", upErr))
	}
	*g = passGate{ran: err == nil, index: index, at: now, wake: c.wake}
	return err
}
