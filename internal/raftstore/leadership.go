package raftstore

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/weftcloud/weft/internal/state"
)

// KindCluster is the kind under which the store keeps its own records in
// the replicated state (the leader's announcement, key "leader").
const KindCluster = "cluster"

const leaderKey = "leader"

// LeaderInfo identifies the current leader as this server knows it.
// Fields are empty when no leader is known.
type LeaderInfo struct {
	ID   string
	Addr string // Raft address
	API  string // API address it announced; empty if none or not yet known
}

// leaderRecord is what a new leader writes under KindCluster/"leader".
type leaderRecord struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	API  string `json:"api,omitempty"`
	Term uint64 `json:"term"`
}

// Leader returns the current leader. The API address comes from the
// leader's announcement, which followers see shortly after an election.
func (s *Store) Leader() LeaderInfo {
	addr, id := s.raft.LeaderWithID()
	li := LeaderInfo{ID: string(id), Addr: string(addr)}
	if e, ok := s.db.Get(KindCluster, leaderKey); ok && li.ID != "" {
		var rec leaderRecord
		if json.Unmarshal(e.Value, &rec) == nil && rec.ID == li.ID && rec.Addr == li.Addr {
			li.API = rec.API
		}
	}
	return li
}

// IsLeader reports whether this server is the Raft leader now. Use
// LeaderCh to start work that needs the leader's state to be complete.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// InContact reports whether this server leads, or heard from the leader
// within d: while it does, no other server can have been given a lease
// this one held (a leader waits out d before handing it on).
func (s *Store) InContact(d time.Duration) bool {
	if s.raft.State() == raft.Leader {
		return true
	}
	last := s.raft.LastContact()
	return !last.IsZero() && time.Since(last) < d
}

// LeaderCh returns a channel that receives true when this server has become
// leader and applied everything committed before (the moment to start
// reconcilers), and false when it stops being leader. A new channel starts
// with true if the server is leader already. Only the latest value is kept
// for a slow receiver. The channel is closed by Close.
func (s *Store) LeaderCh() <-chan bool {
	ch := make(chan bool, 1)
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.subsDone {
		close(ch)
		return ch
	}
	if s.leaderNow {
		ch <- true
	}
	s.subs = append(s.subs, ch)
	return ch
}

func (s *Store) notify(leader bool) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.subsDone || s.leaderNow == leader {
		return
	}
	s.leaderNow = leader
	for _, ch := range s.subs {
		select { // replace a value not yet received
		case <-ch:
		default:
		}
		ch <- leader
	}
}

func (s *Store) closeSubs() {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.subsDone = true
	for _, ch := range s.subs {
		close(ch)
	}
	s.subs = nil
}

// watch follows Raft's leadership changes until Close. It exits when done
// is closed.
func (s *Store) watch() {
	defer close(s.watchDone)
	failed := s.failedCh
	if s.raft.State() == raft.Leader { // the signal went to adopt
		s.figures.changes.Inc()
		s.establish()
	}
	for {
		select {
		case <-s.done:
			return
		case <-failed:
			failed = nil
			s.notify(false)
			s.log.Error("raftstore: shutting raft down after a state machine failure")
			go s.raft.Shutdown()
		case leader := <-s.raft.LeaderCh():
			s.figures.changes.Inc()
			if !leader {
				s.readyTerm.Store(0)
				s.notify(false)
				continue
			}
			s.establish()
		}
	}
}

// establish makes a new leader ready: a barrier in its term commits and
// applies everything before it, then the leader announces itself.
func (s *Store) establish() {
	term := s.raft.CurrentTerm()
	answered, err := s.await(s.raft.Barrier(s.cfg.ApplyTimeout))
	if !answered {
		return // closing
	}
	if err != nil {
		s.log.Warn("raftstore: barrier after election failed", "term", term, "err", err)
		return // a false, or a new true, follows
	}
	s.readyTerm.Store(term)
	s.announce()
	if s.raft.State() == raft.Leader {
		s.notify(true)
	}
	s.log.Info("raftstore: leader ready", "term", term, "index", s.db.Index())
}

// announce writes this leader's addresses into the replicated state, for
// followers to name the leader's API in ErrNotLeader.
func (s *Store) announce() {
	rec, _ := json.Marshal(leaderRecord{
		ID:   s.cfg.NodeID,
		Addr: string(s.trans.LocalAddr()),
		API:  s.cfg.API,
		Term: s.raft.CurrentTerm(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
	defer cancel()
	if _, err := s.Apply(ctx, []state.Op{{Kind: KindCluster, Key: leaderKey, Value: rec}}); err != nil {
		s.log.Warn("raftstore: leader announcement failed", "err", err)
	}
}

// Consistent returns nil when a read from this server's state right after
// it returns sees every write acknowledged before the call: this server is
// the leader, has applied everything committed before its term, and a
// quorum still follows it (a heartbeat round, no log write). Elsewhere it
// returns ErrNotLeader.
func (s *Store) Consistent(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return s.notLeader()
	}
	// Writes this leader acknowledged are applied here before Apply
	// returns; writes of earlier leaders are applied once an entry of
	// this term is (readyTerm). The heartbeat round rules out a newer
	// leader that acknowledged writes this server has not seen.
	if term := s.raft.CurrentTerm(); s.readyTerm.Load() != term {
		if err := waitFuture(ctx, s.raft.Barrier(s.cfg.ApplyTimeout)); err != nil {
			return s.readError(err)
		}
		s.readyTerm.Store(term)
	}
	if err := s.verify.join(ctx, s.raft.VerifyLeader); err != nil {
		return s.readError(err)
	}
	return nil
}

// verifyRounds shares leadership checks between the reads that wait at
// the same time: each read joins the first round that starts after it
// did (a round under way may have begun before the read, so it cannot
// answer it), and one VerifyLeader answers every read of its round. One
// check per read put a round through Raft's leader loop for every GET
// (every node's assignment query, every list) on a controller that
// serves a thousand nodes.
type verifyRounds struct {
	mu      sync.Mutex
	running bool
	next    *verifyRound // collects the reads that came while a round runs
}

type verifyRound struct {
	done  chan struct{}
	err   error
	reads int // the reads it answers
}

// join waits for a round of check that starts after it was called.
func (v *verifyRounds) join(ctx context.Context, check func() raft.Future) error {
	v.mu.Lock()
	var r *verifyRound
	if !v.running {
		v.running = true
		r = &verifyRound{done: make(chan struct{})}
		go v.run(r, check)
	} else {
		if v.next == nil {
			v.next = &verifyRound{done: make(chan struct{})}
		}
		r = v.next
	}
	r.reads++
	v.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run runs round r, then the round that collected reads meanwhile, until
// none did.
func (v *verifyRounds) run(r *verifyRound, check func() raft.Future) {
	for r != nil {
		r.err = check().Error()
		close(r.done)
		v.mu.Lock()
		r, v.next = v.next, nil
		if r == nil {
			v.running = false
		}
		v.mu.Unlock()
	}
}

// readError maps a failed leadership check: whatever Raft says, this
// server cannot serve the read.
func (s *Store) readError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, raft.ErrRaftShutdown) && s.closing.Load() {
		return state.ErrClosed
	}
	return s.notLeader()
}

// waitFuture waits for f or ctx. When ctx ends first the operation goes on
// in Raft; only the wait is abandoned.
func waitFuture(ctx context.Context, f raft.Future) error {
	if ctx.Done() == nil {
		return f.Error()
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
