package raftstore

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/weftcloud/weft/internal/state"
)

// catchUp runs before Raft starts. Raft is told not to restore its newest
// snapshot on start (the state database is normally ahead of it), and
// replays the log only from after that snapshot. If the database is behind
// the snapshot — it was lost or replaced, or the server died between
// receiving a snapshot from the leader and applying it — the entries it
// misses would never be replayed, so the snapshot is restored here.
//
// The database's index is the last command entry it applied (failed checks
// included), so it is behind exactly when a command entry lies between its
// index and the snapshot's, or those entries are gone from the log.
func catchUp(db *state.DB, logs raft.LogStore, snaps raft.SnapshotStore, log *slog.Logger) error {
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("raftstore: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	latest := metas[0]
	applied := db.Index()
	if applied >= latest.Index || !missesCommands(logs, applied, latest.Index) {
		return nil
	}
	_, rc, err := snaps.Open(latest.ID)
	if err != nil {
		return fmt.Errorf("raftstore: open snapshot %s: %w", latest.ID, err)
	}
	defer rc.Close()
	if err := db.Restore(rc); err != nil {
		return fmt.Errorf("raftstore: restore snapshot %s: %w", latest.ID, err)
	}
	log.Info("raftstore: state restored from snapshot", "snapshot", latest.ID, "was", applied, "index", db.Index())
	return nil
}

// missesCommands reports whether a command entry lies in (from, to], or
// the log no longer has all of them.
func missesCommands(logs raft.LogStore, from, to uint64) bool {
	var l raft.Log
	for i := from + 1; i <= to; i++ {
		if err := logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return true
		}
	}
	return false
}

// adopt carries the state of a database that predates the cluster (a
// single server upgraded to Raft, its state.db kept) into the new log. The
// FSM skips entries at or below the database's index, so the log must
// continue above it: a user restore of the database's own snapshot moves
// Raft's index past it and makes the snapshot what followers receive. It
// runs on a server that has just bootstrapped, before watch starts.
func (s *Store) adopt(timeout time.Duration) error {
	s.log.Info("raftstore: adopting existing state into a new cluster", "index", s.db.Index())
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for s.raft.State() != raft.Leader {
		select {
		case <-s.raft.LeaderCh():
		case <-timer.C:
			return fmt.Errorf("raftstore: adopt existing state: no leadership after %v", timeout)
		}
	}
	// Raft restores only once the bootstrap configuration is committed.
	if err := s.raft.Barrier(timeout).Error(); err != nil {
		return fmt.Errorf("raftstore: adopt existing state: %w", err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(s.db.Snapshot(pw)) }()
	err := s.Restore(pr)
	pr.Close()
	if err != nil {
		return fmt.Errorf("raftstore: adopt existing state: %w", err)
	}
	return nil
}
