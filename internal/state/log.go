package state

import (
	"fmt"
)

// LogBatch is a batch that a replicated log (Raft) has already ordered:
// Index is the log's index for it, and becomes the Rev of what it writes.
type LogBatch struct {
	Index uint64
	Ops   []Op
}

// Validate returns ErrInvalid when an operation of ops could never be
// applied (no kind or key, or a kind, key or value too large). A
// replicated store calls it before proposing a batch, so that a batch
// refused for its shape never reaches the log.
func Validate(ops []Op) error {
	for _, op := range ops {
		if err := validOp(op); err != nil {
			return err
		}
	}
	return nil
}

// ApplyLog applies batches in one transaction, each at its own Index, and
// returns one result per batch: nil when it was applied, ErrConflict or
// ErrInvalid when it was not. It is for the one goroutine that applies a
// replicated log (a Raft FSM) and must not be mixed with Apply.
//
// Indexes must increase and be above Index(); gaps are allowed (the log
// has entries that are not batches). After ApplyLog the store's index is
// the last batch's Index even when that batch failed its checks: the log
// has used the index up, and a store that restarts must not apply it again.
//
// The second result is a failure to write (or ErrClosed, or indexes out of
// order): then nothing was applied and the store is as before.
func (db *DB) ApplyLog(batches []LogBatch) ([]error, error) {
	reqs := make([]*request, len(batches))
	for i, b := range batches {
		r := &request{at: b.Index, ops: b.Ops}
		// Unlike Apply, the log owns the values (it does not reuse them),
		// so the ops are kept as they are.
		r.err = Validate(b.Ops)
		reqs[i] = r
	}

	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.RLock()
	closed, last := db.closed, db.v.index
	db.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	for _, b := range batches {
		if b.Index <= last {
			return nil, fmt.Errorf("state: apply log: index %d not above %d", b.Index, last)
		}
		last = b.Index
	}
	if err := db.commit(reqs); err != nil {
		return nil, err
	}
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		errs[i] = r.err
	}
	return errs, nil
}
