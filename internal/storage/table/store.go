package table

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/atomicfile"
)

// On disk every account is a top-level bucket "a/<account>" holding a
// "tables" bucket (lower-cased name → name as created, since table names
// are unique regardless of case) and one bucket "t/<lower-cased name>" of
// entities per table.
var tablesBucket = []byte("tables")

func accountBucketName(account string) []byte { return []byte("a/" + account) }
func tableBucketName(lower string) []byte     { return []byte("t/" + lower) }

// maxGroup bounds how many waiting writes one group takes, so one log
// frame cannot grow without limit under a flood of writers.
const maxGroup = 512

// idleCheckpoint is how long the log may hold writes while no new ones
// come before they are checkpointed into bbolt, keeping restarts short.
const idleCheckpoint = time.Second

// store keeps tables in bbolt and makes entity writes durable through a
// write-ahead log (wal.go): the writes waiting while the previous group
// was written share one frame and one fdatasync, are then visible in an
// in-memory overlay, and reach bbolt when a segment is checkpointed, in
// the background and thousands at a time. Reads consult the overlay
// first. Changes of tables themselves (create, delete, ACL) are rare and
// go to bbolt directly, after the log is checkpointed, so the log only
// ever holds writes to tables that exist.
type store struct {
	db  *bolt.DB
	dir string
	log *slog.Logger

	mu     sync.RWMutex // guards closed, cur's contents and the cur and frozen pointers
	closed bool
	cur    *overlay // writes in the active segment
	frozen *overlay // writes of the previous segment while its checkpoint runs
	reqs   chan *commitReq
	stop   chan struct{}
	done   chan struct{}

	lastTick atomic.Int64 // last Timestamp handed out, in ticks

	// Owned by loop.
	rotateAt int64
	seg      *segment
	spare    *os.File              // the next segment; nil while a checkpoint runs
	ckpt     chan checkpointResult // the running checkpoint's; nil when none runs
	broken   error                 // a failed log write or checkpoint: no more writes
	frame    []byte
}

// commitReq is one write: either an entity write, run against a table
// through a tableWriter, or a change of tables run on bbolt itself.
type commitReq struct {
	account, table string
	write          func(w *tableWriter) error
	barrier        func(tx *bolt.Tx) error
	done           chan error
}

type checkpointResult struct {
	spare *os.File
	err   error
}

var errClosed = errors.New("table: store closed")

func openStore(dir string, logger *slog.Logger) (*store, error) {
	return openStoreRotating(dir, logger, segmentSize)
}

// openStoreRotating opens a store that rotates its log segment after
// rotateAt bytes, which tests set small.
func openStoreRotating(dir string, logger *slog.Logger, rotateAt int64) (*store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("table: create %s: %w", dir, err)
	}
	db, err := bolt.Open(filepath.Join(dir, "table.db"), 0o600, &bolt.Options{
		Timeout:         5 * time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("table: open store: %w", err)
	}
	seg, spare, err := recoverLog(db, dir)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &store{
		db:       db,
		dir:      dir,
		log:      logger,
		cur:      newOverlay(),
		reqs:     make(chan *commitReq, maxGroup),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		seg:      seg,
		spare:    spare,
		rotateAt: rotateAt,
	}
	go s.loop()
	return s, nil
}

// recoverLog checkpoints what the log holds from before a crash (again,
// if it was checkpointed already: a write of a key's newest value is
// idempotent) and starts a fresh log after it.
func recoverLog(db *bolt.DB, dir string) (*segment, *os.File, error) {
	changes, last, err := replayLog(dir)
	if err != nil {
		return nil, nil, err
	}
	if len(changes) > 0 {
		o := newOverlay()
		for _, c := range changes {
			o.set(c)
		}
		if err := db.Update(o.checkpointInto); err != nil {
			return nil, nil, fmt.Errorf("table: replay log: %w", err)
		}
	}
	return resetLog(dir, last+1)
}

// write runs an entity write against table durably: fn checks its
// operation against the table as it is and stages its changes, or returns
// a refusal (such as a 409), which stages nothing. It returns fn's error,
// the store's, or TableNotFound.
func (s *store) write(account, lower string, fn func(w *tableWriter) error) error {
	return s.send(&commitReq{account: account, table: lower, write: fn})
}

// update applies fn to bbolt durably, once every logged write is in it.
func (s *store) update(fn func(tx *bolt.Tx) error) error {
	return s.send(&commitReq{barrier: fn})
}

func (s *store) send(r *commitReq) error {
	r.done = make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	s.reqs <- r
	s.mu.RUnlock()
	return <-r.done
}

// view reads bbolt alone: for tables, never for entities (see entity and
// scan).
func (s *store) view(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

// entity returns the stored value of key in a table, nil when absent.
func (s *store) entity(account, lower string, key []byte) ([]byte, error) {
	id := tableID(account, lower)
	s.mu.RLock()
	it, ok := s.cur.get(id, key)
	if !ok {
		it, ok = s.frozen.get(id, key)
	}
	s.mu.RUnlock()
	if ok {
		return it.val, nil
	}
	// Whatever left the overlay after the lookup above is in bbolt by now.
	var val []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tableBucket(tx, account, lower)
		if b == nil {
			return tableNotFound()
		}
		if v := b.Get(key); v != nil {
			val = bytes.Clone(v)
		}
		return nil
	})
	return val, err
}

// scan calls fn with each entity of a table in key order, from lo up to
// hi (nil: the end), until fn returns false. v is valid only during fn.
func (s *store) scan(account, lower string, lo, hi []byte, fn func(k, v []byte) (bool, error)) error {
	id := tableID(account, lower)
	s.mu.RLock()
	logged := mergeItems(s.cur.rangeOf(id, lo, hi), s.frozen.rangeOf(id, lo, hi))
	s.mu.RUnlock()
	return s.db.View(func(tx *bolt.Tx) error {
		b := tableBucket(tx, account, lower)
		if b == nil {
			return tableNotFound()
		}
		c := b.Cursor()
		k, v := c.Seek(lo)
		next := func() {
			if k, v = c.Next(); hi != nil && k != nil && bytes.Compare(k, hi) >= 0 {
				k = nil
			}
		}
		if hi != nil && k != nil && bytes.Compare(k, hi) >= 0 {
			k = nil
		}
		for k != nil || len(logged) > 0 {
			var key, val []byte
			switch {
			case len(logged) == 0 || k != nil && bytes.Compare(k, logged[0].key) < 0:
				key, val = k, v
				next()
			default:
				key, val = logged[0].key, logged[0].val
				if k != nil && bytes.Equal(k, key) {
					next() // the logged version is newer
				}
				logged = logged[1:]
			}
			if val == nil {
				continue // deleted since the checkpoint
			}
			more, err := fn(key, val)
			if err != nil || !more {
				return err
			}
		}
		return nil
	})
}

// tableWriter is the view an entity write checks against: its own group's
// earlier writes, then the overlay, then bbolt. It stages the write's
// changes for the log.
type tableWriter struct {
	table   string
	layers  []*overlay
	base    *bolt.Bucket
	changes []change
}

func (w *tableWriter) Get(key []byte) []byte {
	for _, o := range w.layers {
		if it, ok := o.get(w.table, key); ok {
			return it.val
		}
	}
	return w.base.Get(key)
}

func (w *tableWriter) Put(key, val []byte) error {
	w.changes = append(w.changes, change{table: w.table, key: key, val: val})
	return nil
}

func (w *tableWriter) Delete(key []byte) error {
	w.changes = append(w.changes, change{table: w.table, key: key})
	return nil
}

func (s *store) loop() {
	defer close(s.done)
	idle := time.NewTimer(idleCheckpoint)
	idle.Stop()
	group := make([]*commitReq, 0, maxGroup)
	for {
		select {
		case r := <-s.reqs:
			group = append(group[:0], r)
			// Let writers that are about to enqueue do so: on few cores a
			// client's next request is often one scheduling slot away.
			runtime.Gosched()
		drain:
			for len(group) < maxGroup {
				select {
				case r := <-s.reqs:
					group = append(group, r)
				default:
					break drain
				}
			}
			s.run(group)
			if !s.cur.empty() {
				idle.Reset(idleCheckpoint)
			}
		case <-idle.C:
			if !s.cur.empty() && s.broken == nil {
				if err := s.rotate(); err != nil {
					s.fail(err)
				}
			}
		case <-s.stop:
			// Senders stopped before stop closed; finish what they queued.
			for len(s.reqs) > 0 {
				s.run([]*commitReq{<-s.reqs})
			}
			s.shutdown()
			return
		}
	}
}

// run commits a group in order: runs of entity writes share a frame,
// table changes go one at a time.
func (s *store) run(group []*commitReq) {
	for len(group) > 0 {
		n := 0
		for n < len(group) && group[n].barrier == nil {
			n++
		}
		if n > 0 {
			s.commitWrites(group[:n])
			group = group[n:]
			continue
		}
		group[0].done <- s.runBarrier(group[0].barrier)
		group = group[1:]
	}
}

func (s *store) commitWrites(group []*commitReq) {
	answer := func(rs []*commitReq, err error) {
		for _, r := range rs {
			r.done <- err
		}
	}
	if s.broken != nil {
		answer(group, s.broken)
		return
	}
	s.mu.RLock()
	frozen := s.frozen
	s.mu.RUnlock()
	// Opened after reading frozen: what a finished checkpoint took out of
	// the overlay is in this transaction.
	tx, err := s.db.Begin(false)
	if err != nil {
		answer(group, fmt.Errorf("table: read store: %w", err))
		return
	}
	pending := newOverlay()
	layers := []*overlay{pending, s.cur, frozen}
	var payload []byte
	var changes []change
	ok := group[:0:0]
	for _, r := range group {
		b := tableBucket(tx, r.account, r.table)
		if b == nil {
			r.done <- tableNotFound()
			continue
		}
		w := &tableWriter{table: tableID(r.account, r.table), layers: layers, base: b}
		if err := r.write(w); err != nil {
			r.done <- err
			continue
		}
		for _, c := range w.changes {
			pending.set(c)
			payload = appendChange(payload, c)
		}
		changes = append(changes, w.changes...)
		ok = append(ok, r)
	}
	// Closed before logging: a rotation may wait for a checkpoint, whose
	// commit may wait for read transactions to end.
	_ = tx.Rollback()
	if len(changes) == 0 {
		answer(ok, nil)
		return
	}
	if err := s.append(payload); err != nil {
		s.fail(err)
		answer(ok, err)
		return
	}
	s.mu.Lock()
	for _, c := range changes {
		s.cur.set(c)
	}
	s.mu.Unlock()
	answer(ok, nil)
}

// append logs one frame, in a fresh segment when the active one is full.
func (s *store) append(payload []byte) error {
	if s.seg.off > 0 && s.seg.off+int64(frameHeader+len(payload)) > s.rotateAt {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	s.frame = appendFrame(s.frame[:0], s.seg.seq, payload)
	return s.seg.append(s.frame)
}

// rotate makes the spare the active segment and checkpoints the writes
// of the one before in the background.
func (s *store) rotate() error {
	if err := s.waitCheckpoint(); err != nil {
		return err
	}
	next := &segment{f: s.spare, seq: s.seg.seq + 1}
	if err := os.Rename(filepath.Join(s.dir, sparePath), segmentPath(s.dir, next.seq)); err != nil {
		return fmt.Errorf("table: rotate log: %w", err)
	}
	// The new name must be durable before a frame in the file counts.
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return err
	}
	old := s.seg
	s.seg, s.spare = next, nil
	s.mu.Lock()
	frozen := s.cur
	s.frozen, s.cur = frozen, newOverlay()
	s.mu.Unlock()
	done := make(chan checkpointResult, 1)
	s.ckpt = done
	go func() { done <- s.checkpoint(frozen, old) }()
	return nil
}

// checkpoint commits a segment's writes to bbolt, then recycles the
// segment as the next spare.
func (s *store) checkpoint(o *overlay, old *segment) checkpointResult {
	if err := s.db.Update(o.checkpointInto); err != nil {
		return checkpointResult{err: fmt.Errorf("table: checkpoint: %w", err)}
	}
	s.mu.Lock()
	s.frozen = nil
	s.mu.Unlock()
	if err := os.Rename(segmentPath(s.dir, old.seq), filepath.Join(s.dir, sparePath)); err != nil {
		return checkpointResult{err: fmt.Errorf("table: recycle log: %w", err)}
	}
	// Durable before any later table change: replaying this segment
	// after one could bring back entities of a table deleted since.
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return checkpointResult{err: err}
	}
	return checkpointResult{spare: old.f}
}

func (s *store) waitCheckpoint() error {
	if s.ckpt == nil {
		return nil
	}
	res := <-s.ckpt
	s.ckpt = nil
	if res.err != nil {
		return res.err
	}
	s.spare = res.spare
	return nil
}

// runBarrier applies a change of tables to bbolt after the log.
func (s *store) runBarrier(fn func(tx *bolt.Tx) error) error {
	if s.broken != nil {
		return s.broken
	}
	if !s.cur.empty() {
		if err := s.rotate(); err != nil {
			s.fail(err)
			return err
		}
	}
	if err := s.waitCheckpoint(); err != nil {
		s.fail(err)
		return err
	}
	return s.db.Update(fn)
}

// fail stops writes after a failed log write or checkpoint: what was
// acknowledged is in the log, but whether later frames reached the disk is
// unknown, so the store must be reopened (and replay the log) to go on.
func (s *store) fail(err error) {
	if s.broken == nil {
		s.log.Error("table: store stopped taking writes", "err", err)
		s.broken = err
	}
}

// shutdown checkpoints what the log holds so that the next open has
// nothing to replay, then closes the log files.
func (s *store) shutdown() {
	if err := s.waitCheckpoint(); err != nil {
		s.fail(err)
	}
	if s.broken == nil && !s.cur.empty() {
		if err := s.db.Update(s.cur.checkpointInto); err != nil {
			s.fail(err)
		}
	}
	s.seg.f.Close()
	if s.spare != nil {
		s.spare.Close()
	}
}

func (s *store) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("table: close store: %w", err)
	}
	return nil
}

// now returns a Timestamp strictly after every one handed out before, so
// ETags derived from it never repeat even within one clock tick.
func (s *store) now() int64 {
	t := timeToTicks(time.Now().UTC())
	for {
		last := s.lastTick.Load()
		if t <= last {
			t = last + 1
		}
		if s.lastTick.CompareAndSwap(last, t) {
			return t
		}
	}
}

// tableBucket returns the entity bucket of a table, or nil when the table
// does not exist.
func tableBucket(tx *bolt.Tx, account, lower string) *bolt.Bucket {
	a := tx.Bucket(accountBucketName(account))
	if a == nil {
		return nil
	}
	return a.Bucket(tableBucketName(lower))
}

// checkpointInto writes the overlay's versions into bbolt.
func (o *overlay) checkpointInto(tx *bolt.Tx) error {
	for id, t := range o.tables {
		account, lower := splitTableID(id)
		b := tableBucket(tx, account, lower)
		if b == nil {
			continue // deleted since, with its entities
		}
		var err error
		t.Ascend(func(it item) bool {
			if it.val == nil {
				err = b.Delete(it.key)
			} else {
				err = b.Put(it.key, it.val)
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
