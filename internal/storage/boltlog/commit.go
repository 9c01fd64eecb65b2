package boltlog

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/weftcloud/weft/internal/vfs"
)

// Writes are committed in a pipeline of two goroutines. The loop runs each
// group of waiting writes against the database, writes their frame to the
// log and hands the group on as a batch; the syncer makes every batch
// handed to it meanwhile durable with one fdatasync, publishes their
// writes into cur and answers them. While the syncer waits for the disk,
// the loop already runs the next group, against the writes still in
// flight as well as the published ones, so groups grow with the load
// instead of queueing behind the disk.

// batch is one group on its way through the syncer.
type batch struct {
	seq     uint64
	file    vfs.File     // the segment to sync; nil when the group wrote nothing
	shipped func() error // waits for the frame's replicas (Options.Ship)
	changes []change
	view    *overlay // the changes, for the groups after it until published
	reqs    []*request
	errs    []error       // each request's own answer when the batch is synced
	flushed chan struct{} // closed once the syncer has reached the batch
}

func (db *DB) loop() {
	defer close(db.done)
	idle := time.NewTimer(idleCheckpoint)
	idle.Stop()
	group := make([]*request, 0, maxGroup)
	for {
		select {
		case r := <-db.reqs:
			group = append(group[:0], r)
			// Let writers that are about to enqueue do so: on few cores a
			// client's next request is often one scheduling slot away.
			runtime.Gosched()
		drain:
			for len(group) < maxGroup {
				select {
				case r := <-db.reqs:
					group = append(group, r)
				default:
					break drain
				}
			}
			db.run(group)
			idle.Reset(idleCheckpoint)
		case <-idle.C:
			db.drain()
			if !db.curEmpty() && db.brokenErr() == nil {
				if err := db.rotate(); err != nil {
					db.fail(err)
				}
			}
		case <-db.stop:
			// Senders stopped before stop closed; finish what they queued.
			for len(db.reqs) > 0 {
				db.run([]*request{<-db.reqs})
			}
			db.shutdown()
			return
		}
	}
}

// run commits a group in order: runs of writes share a frame, updates
// and dumps go one at a time.
func (db *DB) run(group []*request) {
	for len(group) > 0 {
		n := 0
		for n < len(group) && group[n].write != nil {
			n++
		}
		if n > 0 {
			db.commitWrites(group[:n])
			group = group[n:]
			continue
		}
		if r := group[0]; r.update != nil {
			r.done <- db.runUpdate(r.update)
		} else {
			r.done <- db.takeCut(r)
		}
		group = group[1:]
	}
}

func (db *DB) commitWrites(group []*request) {
	answer := func(err error) {
		for _, r := range group {
			r.done <- err
		}
	}
	if err := db.brokenErr(); err != nil {
		answer(err)
		return
	}
	db.mu.RLock()
	cur, frozen, published := db.cur, db.frozen, db.published
	db.mu.RUnlock()
	for len(db.inflight) > 0 && db.inflight[0].seq <= published {
		db.inflight = db.inflight[1:]
	}
	// Opened after reading frozen: what a finished checkpoint took out of
	// the overlays is in this transaction.
	btx, err := db.db.Begin(false)
	if err != nil {
		answer(fmt.Errorf("boltlog: read: %w", err))
		return
	}
	pending := newOverlay() // this group's writes so far
	under := []*overlay{pending}
	for i := len(db.inflight) - 1; i >= 0; i-- {
		under = append(under, db.inflight[i].view)
	}
	under = append(under, cur, frozen)
	// A copy: the loop reuses group's array while the syncer answers.
	b := &batch{reqs: slices.Clone(group), errs: make([]error, len(group))}
	payload := []byte{frameWrites}
	for i, r := range group {
		tx := &Tx{bolt: btx, own: newOverlay()}
		tx.layers = append([]*overlay{tx.own}, under...)
		if err := r.write(tx); err != nil {
			b.errs[i] = err
			continue
		}
		for _, c := range tx.own.changes() {
			pending.set(c)
			b.changes = append(b.changes, c)
			payload = appendChange(payload, c)
		}
	}
	// Closed before logging: a rotation may wait for a checkpoint, whose
	// commit may wait for read transactions to end.
	_ = btx.Rollback()
	if len(b.changes) > 0 {
		db.frame = appendFrame(db.frame[:0], db.seg.seq, payload)
		if err := db.seg.write(db.frame); err != nil {
			// Nothing of the group was published or shipped; the log goes
			// on from where it was, so once the disk has room again (the
			// writes fail with ENOSPC until then) writes succeed again.
			db.log.Warn("boltlog: log write failed", "err", err)
			answer(err)
			return
		}
		b.file, b.view = db.seg.f, pending
		b.shipped = db.ship(payload)
		db.inflight = append(db.inflight, b)
	}
	// Even a group that wrote nothing goes through the syncer: what it
	// read may be a write in flight, whose fate its answer must wait for.
	db.toSyncer(b)
	db.mu.RLock()
	deletes := db.cur.deletes
	db.mu.RUnlock()
	// Past its size (or its deletes), the segment is rotated once the last
	// checkpoint is done; at four times its size, writers wait for it.
	if (db.seg.off >= db.opt.RotateAt || deletes >= db.opt.RotateDeletes) && db.checkpointDone() || db.seg.off >= 4*db.opt.RotateAt {
		if err := db.rotate(); err != nil {
			db.fail(err)
		}
	}
}

func (db *DB) toSyncer(b *batch) {
	db.sent++
	b.seq = db.sent
	db.syncq <- b
}

// drain waits until every batch sent is synced and published (or failed).
func (db *DB) drain() {
	b := &batch{flushed: make(chan struct{})}
	db.toSyncer(b)
	<-b.flushed
	db.inflight = nil
}

// syncer makes batches durable and answers them, in order.
func (db *DB) syncer() {
	for b := range db.syncq {
		group := []*batch{b}
	more:
		for {
			select {
			case b, ok := <-db.syncq:
				if !ok {
					break more
				}
				group = append(group, b)
			default:
				break more
			}
		}
		db.sync(group)
	}
}

func (db *DB) sync(group []*batch) {
	var file vfs.File
	var changes []change
	for _, b := range group {
		if b.file != nil {
			file = b.file // every batch in flight is in the active segment
			changes = append(changes, b.changes...)
		}
	}
	err := db.brokenErr()
	if err == nil && file != nil {
		start := time.Now()
		if serr := vfs.Datasync(file); serr != nil {
			err = fmt.Errorf("boltlog: sync log: %w", serr)
			db.fail(err)
		}
		if db.opt.Synced != nil {
			writes := 0
			for _, b := range group {
				writes += len(b.reqs)
			}
			db.opt.Synced(writes, time.Since(start))
		}
	}
	for _, b := range group {
		if err == nil && b.shipped != nil {
			err = db.shipWait(b.shipped)
		}
	}
	if err == nil {
		next := db.cur // only the syncer and a drained loop change cur
		if len(changes) > 0 {
			next = next.with(changes)
		}
		db.mu.Lock()
		db.cur, db.published = next, group[len(group)-1].seq
		db.mu.Unlock()
	}
	for _, b := range group {
		for i, r := range b.reqs {
			if err != nil {
				r.done <- err
			} else {
				r.done <- b.errs[i]
			}
		}
		if b.flushed != nil {
			close(b.flushed)
		}
	}
}

// checkpointDone says whether no checkpoint runs: none was started, or
// its result waits in the channel for waitCheckpoint.
func (db *DB) checkpointDone() bool { return db.ckpt == nil || len(db.ckpt) > 0 }

// rotate makes the spare the active segment and checkpoints the writes
// of the one before in the background, once they are all published.
func (db *DB) rotate() error {
	db.drain()
	if err := db.waitCheckpoint(); err != nil {
		return err
	}
	next := &segment{f: db.spare, seq: db.seg.seq + 1}
	if err := db.logf.fs.Rename(db.logf.spare(), db.logf.segment(next.seq)); err != nil {
		return fmt.Errorf("boltlog: rotate log: %w", err)
	}
	// The new name must be durable before a frame in the file counts.
	if err := db.logf.fs.SyncDir(db.logf.dir); err != nil {
		return fmt.Errorf("boltlog: rotate log: %w", err)
	}
	old := db.seg
	db.seg, db.spare = next, nil
	db.mu.Lock()
	frozen := db.cur
	db.frozen, db.cur = frozen, newOverlay()
	db.mu.Unlock()
	done := make(chan checkpointResult, 1)
	db.ckpt = done
	go func() { done <- db.checkpoint(frozen, old) }()
	return nil
}

// checkpoint commits a segment's writes to bbolt, then recycles the
// segment as the next spare.
func (db *DB) checkpoint(o *overlay, old *segment) checkpointResult {
	if err := db.db.Update(o.checkpointInto); err != nil {
		return checkpointResult{err: fmt.Errorf("boltlog: checkpoint: %w", err)}
	}
	db.mu.Lock()
	db.frozen = nil
	db.mu.Unlock()
	if err := db.logf.fs.Rename(db.logf.segment(old.seq), db.logf.spare()); err != nil {
		return checkpointResult{err: fmt.Errorf("boltlog: recycle log: %w", err)}
	}
	// Durable before any later Update: replaying this segment after one
	// could bring back keys of a bucket deleted and made again since.
	if err := db.logf.fs.SyncDir(db.logf.dir); err != nil {
		return checkpointResult{err: fmt.Errorf("boltlog: recycle log: %w", err)}
	}
	return checkpointResult{spare: old.f}
}

func (db *DB) waitCheckpoint() error {
	if db.ckpt == nil {
		return nil
	}
	res := <-db.ckpt
	db.ckpt = nil
	if res.err != nil {
		return res.err
	}
	db.spare = res.spare
	return nil
}

func (db *DB) runUpdate(fn func(tx *Tx) error) error {
	db.drain()
	if err := db.brokenErr(); err != nil {
		return err
	}
	if !db.curEmpty() {
		if err := db.rotate(); err != nil {
			db.fail(err)
			return err
		}
	}
	if err := db.waitCheckpoint(); err != nil {
		db.fail(err)
		return err
	}
	btx, err := db.db.Begin(true)
	if err != nil {
		return fmt.Errorf("boltlog: update: %w", err)
	}
	var changes []change
	if err := fn(&Tx{bolt: btx, update: &changes}); err != nil {
		_ = btx.Rollback()
		return err
	}
	if len(changes) > 0 {
		// Logged first: a crash before the commit replays it.
		payload := []byte{frameUpdate}
		for _, c := range changes {
			payload = appendChange(payload, c)
		}
		db.frame = appendFrame(db.frame[:0], db.seg.seq, payload)
		if err := db.seg.write(db.frame); err != nil {
			// As in commitWrites: nothing logged, nothing committed.
			_ = btx.Rollback()
			return fmt.Errorf("boltlog: log update: %w", err)
		}
		shipped := db.ship(payload)
		if err := vfs.Datasync(db.seg.f); err != nil {
			_ = btx.Rollback()
			db.fail(err)
			return fmt.Errorf("boltlog: log update: %w", err)
		}
		if shipped != nil {
			if err := db.shipWait(shipped); err != nil {
				_ = btx.Rollback()
				return err
			}
		}
	}
	if err := btx.Commit(); err != nil {
		// Logged but not in bbolt: only a reopen, replaying it, goes on.
		db.fail(err)
		return fmt.Errorf("boltlog: update: %w", err)
	}
	return nil
}

// ship hands a frame just written to Options.Ship, returning its wait.
func (db *DB) ship(payload []byte) func() error {
	if db.opt.Ship == nil {
		return nil
	}
	return db.opt.Ship(payload)
}

// shipWait waits for a frame's replicas; a failure stops the database.
func (db *DB) shipWait(wait func() error) error {
	if err := wait(); err != nil {
		err = fmt.Errorf("boltlog: ship frame: %w", err)
		db.fail(err)
		return err
	}
	return nil
}

func (db *DB) curEmpty() bool {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.cur.empty()
}

func (db *DB) brokenErr() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.broken
}

// fail stops writes after a failed log write, sync or checkpoint: what was
// acknowledged is in the log, but whether later frames reached the disk is
// unknown, so the database must be reopened (and replay the log) to go on.
func (db *DB) fail(err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.broken == nil {
		db.log.Error("boltlog: no more writes", "err", err)
		db.broken = err
	}
}

// shutdown stops the syncer and checkpoints what the log holds, so that
// the next Open has nothing to replay, and closes the log files.
func (db *DB) shutdown() {
	db.drain()
	close(db.syncq)
	if err := db.waitCheckpoint(); err != nil {
		db.fail(err)
	}
	db.mu.RLock()
	final := db.broken == nil && !db.cur.empty() && !db.crashed
	db.mu.RUnlock()
	if final {
		if err := db.db.Update(db.cur.checkpointInto); err != nil {
			db.fail(err)
		}
	}
	db.seg.f.Close()
	if db.spare != nil {
		db.spare.Close()
	}
}
