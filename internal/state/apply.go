package state

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// request is one Apply waiting for the commit loop.
type request struct {
	ops []Op
	// at is the index a replicated log gave the batch (ApplyLog); 0 for
	// Apply, which takes the next index.
	at    uint64
	index uint64
	err   error
	done  chan struct{}
}

// Apply validates the batch, hands it to the commit loop and waits until
// it is fsynced or refused. Checks are evaluated against the state before
// the batch (and after every batch committed before it); a failed check
// returns ErrConflict, a malformed op ErrInvalid, and in both cases nothing
// is written. ctx is honoured only until the batch is queued: once queued
// it commits within one fsync, and returning early would tell the caller it
// failed when it may not have.
func (db *DB) Apply(ctx context.Context, ops []Op) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := &request{ops: make([]Op, len(ops)), done: make(chan struct{})}
	for i, op := range ops {
		if err := validOp(op); err != nil {
			return 0, err
		}
		// The caller may reuse its buffers once Apply returns.
		op.Value = cloneBytes(op.Value)
		r.ops[i] = op
	}

	db.qmu.Lock()
	if db.stopping {
		db.qmu.Unlock()
		return 0, ErrClosed
	}
	db.queue = append(db.queue, r)
	db.qmu.Unlock()
	select {
	case db.kick <- struct{}{}:
	default: // the loop is already due to look at the queue
	}
	<-r.done
	return r.index, r.err
}

func validOp(op Op) error {
	switch {
	case op.Kind == "":
		return fmt.Errorf("%w: empty kind", ErrInvalid)
	case op.Key == "":
		return fmt.Errorf("%w: %s: empty key", ErrInvalid, op.Kind)
	case len(kindPrefix)+len(op.Kind) > bolt.MaxKeySize:
		return fmt.Errorf("%w: kind too long", ErrInvalid)
	case len(op.Key) > bolt.MaxKeySize:
		return fmt.Errorf("%w: %s: key too long", ErrInvalid, op.Kind)
	case len(op.Value) > bolt.MaxValueSize-revSize:
		return fmt.Errorf("%w: %s/%s: value too large", ErrInvalid, op.Kind, op.Key)
	}
	return nil
}

// run is the commit loop. It exits after Close, once the batches queued
// before Close are committed.
func (db *DB) run() {
	defer close(db.loopDone)
	for {
		select {
		case <-db.kick:
			db.commitQueued()
		case <-db.stop:
			db.commitQueued()
			return
		}
	}
}

func (db *DB) commitQueued() {
	db.qmu.Lock()
	group := db.queue
	db.queue = nil
	db.qmu.Unlock()
	if len(group) == 0 {
		return
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.commit(group)
}

type kindKey struct{ kind, key string }

// pendingRev is what an earlier batch of the same group did to a key.
type pendingRev struct {
	rev     uint64
	deleted bool
}

// commit writes every batch of group whose checks pass in one bbolt
// transaction, then publishes them. The caller holds writeMu. A batch from
// a log (at != 0) moves the index to its own even when its checks fail,
// because the log has used that index up. commit returns the write error
// it also stored in every accepted request.
func (db *DB) commit(group []*request) error {
	defer func() {
		for _, r := range group {
			if r.done != nil {
				close(r.done)
			}
		}
	}()

	// Decide each batch against the view plus what the earlier batches of
	// this group will have done.
	overlay := make(map[kindKey]pendingRev)
	next := db.v.index
	var accepted []*request
	for _, r := range group {
		if r.at != 0 {
			next = r.at
		}
		if r.err != nil { // refused before it got here (ApplyLog)
			continue
		}
		if err := db.checkOps(r.ops, overlay); err != nil {
			r.err = err
			continue
		}
		if r.at == 0 {
			next++
		}
		r.index = next
		for _, op := range r.ops {
			if !op.Check {
				overlay[kindKey{op.Kind, op.Key}] = pendingRev{rev: next, deleted: op.Delete}
			}
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 && next == db.v.index {
		return nil
	}

	if err := db.bolt.Update(func(tx *bolt.Tx) error { return writeBatches(tx, accepted, next) }); err != nil {
		err = fmt.Errorf("state: commit: %w", err)
		db.log.Error("state commit failed", "batches", len(accepted), "err", err)
		for _, r := range accepted {
			r.index, r.err = 0, err
		}
		return err
	}

	db.publish(func(v *view) {
		for _, r := range accepted {
			for _, op := range r.ops {
				switch {
				case op.Check:
				case op.Delete:
					v.delete(op.Kind, op.Key, r.index)
				default:
					v.put(Entry{Kind: op.Kind, Key: op.Key, Value: op.Value, Rev: r.index})
				}
			}
		}
		v.index = next
	})
	return nil
}

// checkOps returns ErrConflict when a check of ops fails.
func (db *DB) checkOps(ops []Op, overlay map[kindKey]pendingRev) error {
	for _, op := range ops {
		if !op.Check {
			continue
		}
		var cur uint64
		if p, ok := overlay[kindKey{op.Kind, op.Key}]; ok {
			if !p.deleted {
				cur = p.rev
			}
		} else if e, ok := db.v.get(op.Kind, op.Key); ok {
			cur = e.Rev
		}
		if cur != op.Rev {
			return fmt.Errorf("%w: %s/%s is at rev %d, not %d", ErrConflict, op.Kind, op.Key, cur, op.Rev)
		}
	}
	return nil
}

func writeBatches(tx *bolt.Tx, batches []*request, index uint64) error {
	buckets := make(map[string]*bolt.Bucket)
	bucket := func(kind string) (*bolt.Bucket, error) {
		if b, ok := buckets[kind]; ok {
			return b, nil
		}
		b, err := tx.CreateBucketIfNotExists([]byte(kindPrefix + kind))
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", kind, err)
		}
		buckets[kind] = b
		return b, nil
	}
	for _, r := range batches {
		for _, op := range r.ops {
			if op.Check {
				continue
			}
			b, err := bucket(op.Kind)
			if err != nil {
				return err
			}
			if op.Delete {
				err = b.Delete([]byte(op.Key))
			} else {
				err = b.Put([]byte(op.Key), record(r.index, op.Value))
			}
			if err != nil {
				return fmt.Errorf("%s/%s: %w", op.Kind, op.Key, err)
			}
		}
	}
	return putIndex(tx, index)
}

func putIndex(tx *bolt.Tx, index uint64) error {
	sys, err := tx.CreateBucketIfNotExists(sysBucket)
	if err != nil {
		return fmt.Errorf("sys bucket: %w", err)
	}
	return sys.Put(indexKey, binary.BigEndian.AppendUint64(nil, index))
}

// record is the on-disk form of an entry: its Rev, then its bytes.
func record(rev uint64, value []byte) []byte {
	buf := make([]byte, revSize, revSize+len(value))
	binary.BigEndian.PutUint64(buf, rev)
	return append(buf, value...)
}
