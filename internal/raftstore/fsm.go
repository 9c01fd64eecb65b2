package raftstore

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/weftcloud/weft/internal/state"
)

// fsm applies committed entries to the server's state.DB. The database
// records the index of the last entry applied, so after a restart the
// entries Raft hands over again (everything after its last snapshot) that
// are at or below that index are skipped rather than applied twice.
type fsm struct {
	db  *state.DB
	log *slog.Logger
	// onFail is called once, on its own goroutine, when a write fails.
	onFail func(error)

	mu     sync.Mutex
	failed error
}

var _ raft.BatchingFSM = (*fsm)(nil)

// applyResult is the response of one entry, which Apply's future carries
// back to the proposer on the leader.
type applyResult struct {
	index uint64
	err   error
}

func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies the command entries of logs in one transaction.
// Configuration entries are answered with nil.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if err := f.failure(); err != nil {
		return fill(out, logs, err)
	}
	applied := f.db.Index()
	batches := make([]state.LogBatch, 0, len(logs))
	where := make([]int, 0, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if l.Index <= applied { // applied before a restart
			out[i] = applyResult{index: l.Index}
			continue
		}
		ops, err := decodeBatch(l.Data)
		if err != nil {
			// Skipping would let this server drift from the others.
			f.fail(fmt.Errorf("entry %d: %w", l.Index, err))
			return fill(out, logs, f.failure())
		}
		batches = append(batches, state.LogBatch{Index: l.Index, Ops: ops})
		where = append(where, i)
	}
	if len(batches) == 0 {
		return out
	}
	errs, err := f.db.ApplyLog(batches)
	if err != nil {
		f.fail(err)
		return fill(out, logs, f.failure())
	}
	for j, i := range where {
		out[i] = applyResult{index: batches[j].Index, err: errs[j]}
	}
	return out
}

// fill answers every command entry of logs with err.
func fill(out []any, logs []*raft.Log, err error) []any {
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = applyResult{err: err}
		}
	}
	return out
}

func (f *fsm) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed != nil {
		return
	}
	f.failed = fmt.Errorf("%w: %w", ErrFailed, err)
	f.log.Error("raftstore: state machine failed; restart the server", "err", err)
	if f.onFail != nil {
		go f.onFail(f.failed)
	}
}

// failure returns the error that stopped the FSM, or nil.
func (f *fsm) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// Snapshot captures the state; Persist writes it while later entries apply.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	c, err := f.db.Capture()
	if err != nil {
		return nil, fmt.Errorf("raftstore: snapshot: %w", err)
	}
	return fsmSnapshot{c}, nil
}

// Restore replaces the state with a snapshot from the leader or from a
// user restore. The stream is state.DB's snapshot format.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.Restore(rc); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	return nil
}

type fsmSnapshot struct{ c *state.Capture }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.c.Write(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftstore: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raftstore: persist snapshot: %w", err)
	}
	return nil
}

func (fsmSnapshot) Release() {}
