package placement

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/weftcloud/weft/internal/state"
)

// DefaultLease is the Reconciler's Lease when none is given.
const DefaultLease = 3 * time.Second

// Reconciler chooses the first primary and replaces a lost one. It runs on
// the Raft leader only.
//
// The primary serves only while it heard from the leader within Lease (the
// leader's probes are what it hears), so once the probes have failed for
// 2*Lease it has stopped serving, with a Lease to spare for clocks that
// run at different rates, and another in-sync member may take over under a
// new epoch. A new leader has not seen the probes its predecessor sent, so
// it counts the failures from when it started: it never promotes before it
// has led for 2*Lease, which also waits out a lease the old leader granted.
//
// The primary's lease is its contact with the Raft leader, and it must
// use the same Lease. A primary that answers but does not serve (it lost
// its lease while the leader can still reach it) counts as failed: it
// would otherwise be kept forever with nothing served.
type Reconciler struct {
	Store state.Store
	Self  string // this server's name
	// Probe (required) asks a member's storage what it is: a nil error
	// when it answers, and whether it serves as the primary.
	Probe func(ctx context.Context, m Member) (serving bool, err error)
	Lease time.Duration // default DefaultLease: a primary serves only while it heard from the leader within Lease
	Log   *slog.Logger  // nil: discard
}

// watch is what a Reconciler remembers of the primary between passes.
type watch struct {
	epoch   uint64
	primary string
	heard   time.Time // when its last probe succeeded, or when watching began
	failing bool      // its last probe failed (logged once)
	stuck   bool      // no member could take over (logged once)
}

// Run reconciles every Lease/3 until ctx ends: it writes the first
// configuration (one registered member alone, epoch 1) when there is none, probes the primary, and promotes another
// in-sync member when the primary is lost. Errors of the store (such as
// losing leadership) are logged and the next pass tries again.
func (r *Reconciler) Run(ctx context.Context) {
	lease := r.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	var w watch
	tick := time.NewTicker(lease / 3)
	defer tick.Stop()
	for {
		r.pass(ctx, lease, started, &w, log)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pass is one round of Run.
func (r *Reconciler) pass(ctx context.Context, lease time.Duration, started time.Time, w *watch, log *slog.Logger) {
	cfg, rev, ok := Current(r.Store)
	if !ok {
		r.initialise(ctx, lease, log)
		return
	}
	if cfg.Epoch != w.epoch || cfg.Primary != w.primary {
		*w = watch{epoch: cfg.Epoch, primary: cfg.Primary, heard: time.Now()}
	}

	serving, err := r.probe(ctx, lease, cfg.Primary)
	if err == nil && !serving {
		err = errNotServing
	}
	switch {
	case ctx.Err() != nil:
		return
	case err == nil:
		// The time after the answer, not before the request: the primary
		// renewed its lease somewhere in between, and a later estimate
		// only makes the wait longer.
		w.heard = time.Now()
		if w.failing {
			log.Info("storage primary answers again", "primary", cfg.Primary, "epoch", cfg.Epoch)
		}
		w.failing, w.stuck = false, false
		return
	case !w.failing:
		w.failing = true
		log.Warn("storage primary does not answer", "primary", cfg.Primary, "epoch", cfg.Epoch, "err", err)
	}
	now := time.Now()
	if now.Sub(w.heard) <= 2*lease || now.Sub(started) <= lease {
		return
	}

	// InSync is sorted, so the first member that answers is the same one
	// every leader would pick.
	for _, name := range cfg.InSync {
		if name == cfg.Primary {
			continue
		}
		if _, err := r.probe(ctx, lease, name); err != nil {
			continue
		}
		next := Config{Epoch: cfg.Epoch + 1, Primary: name, InSync: []string{name}}
		err := put(ctx, r.Store, next, rev)
		switch {
		case errors.Is(err, state.ErrConflict):
			log.Info("storage configuration changed while promoting; looking again", "candidate", name)
		case err != nil:
			log.Warn("storage primary not replaced", "primary", cfg.Primary, "candidate", name, "err", err)
		default:
			log.Warn("storage primary replaced", "old", cfg.Primary, "primary", name, "epoch", next.Epoch, "silent", now.Sub(w.heard).Round(time.Millisecond))
			*w = watch{epoch: next.Epoch, primary: name, heard: time.Now()}
		}
		return
	}
	if !w.stuck {
		w.stuck = true
		log.Warn("storage unavailable until "+cfg.Primary+" returns: no other in-sync member answers", "primary", cfg.Primary, "epoch", cfg.Epoch, "inSync", cfg.InSync)
	}
}

// initialise chooses the first primary, alone in its in-sync set: this
// server when it is registered, or else (it may have no storage of its
// own: --no-storage) the first registered member by name that answers. The
// record must not exist: a configuration written meanwhile wins.
func (r *Reconciler) initialise(ctx context.Context, lease time.Duration, log *slog.Logger) {
	first := ""
	if _, ok := member(r.Store, r.Self); ok {
		first = r.Self
	} else {
		for _, m := range Members(r.Store) {
			if _, err := r.probe(ctx, lease, m.Name); err == nil {
				first = m.Name
				break
			}
		}
		if first == "" {
			return
		}
	}
	cfg := Config{Epoch: 1, Primary: first, InSync: []string{first}}
	switch err := put(ctx, r.Store, cfg, 0); {
	case errors.Is(err, state.ErrConflict):
		// Someone else chose; the next pass reads it.
	case err != nil:
		log.Warn("storage primary not chosen", "primary", first, "err", err)
	default:
		log.Info("storage primary chosen", "primary", first, "epoch", cfg.Epoch)
	}
}

// probe asks the member name's storage whether it answers and serves as
// the primary, within a third of the lease so one silent member cannot
// hold up a pass for long. A name that is not a registered member (it was
// removed) fails.
func (r *Reconciler) probe(ctx context.Context, lease time.Duration, name string) (serving bool, err error) {
	m, ok := member(r.Store, name)
	if !ok {
		return false, errNotMember
	}
	ctx, cancel := context.WithTimeout(ctx, lease/3)
	defer cancel()
	return r.Probe(ctx, m)
}

var (
	errNotMember  = errors.New("not a registered member")
	errNotServing = errors.New("answers but does not serve as the primary")
)
