// Package boltlog keeps a bbolt database behind a write-ahead log, for
// stores whose writes are small, many and each acknowledged durably.
//
// Writes (Write) are group-committed: the ones waiting while the previous
// group was written share one frame of the log and one fdatasync, where a
// bbolt commit needs two, and the next group is written while that
// fdatasync runs (commit.go). They are then visible through an in-memory
// overlay, and reach bbolt when a segment is checkpointed, in the
// background and thousands at a time. Reads (View) see the overlay merged
// with bbolt, cursors included. Changes of the bucket structure (Update)
// are rare: they run on bbolt directly once the log is checkpointed, and
// are logged as well, so that the log is the whole history of the
// database since its last checkpoint, in order.
package boltlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/vfs"
)

// Options tune a DB; the zero value is right outside tests.
type Options struct {
	Logger *slog.Logger
	// RotateAt is how many bytes of log a segment takes before its writes
	// are checkpointed (default 8 MiB).
	RotateAt int64
	// RotateDeletes is how many deleted keys the overlay may hold before a
	// checkpoint (default 256): a cursor skips each one it meets in bbolt,
	// so a queue read from its head would slow down as they pile up.
	RotateDeletes int
	// Bolt are the options bbolt is opened with; by default a free list
	// kept in memory, not written at each commit, and a 64 MiB first map.
	Bolt *bolt.Options
	// Ship, when set, gets every frame the database logs, in the order
	// logged, as soon as it is written here (a replica applies it with
	// Apply), and returns a wait (nil: none) that returns once the
	// replicas that must have the frame do. The writes in the frame are
	// answered once it is durable here and the wait returned, so the
	// replicas' work runs beside this disk's sync. An error of the wait
	// fails those writes and stops the database taking more, like a
	// failed sync.
	Ship func(frame []byte) (wait func() error)
	// FS holds the log's files (default the operating system's). The
	// bbolt file is not on it: bbolt opens and maps its file itself, and
	// makes each commit durable with its own fdatasync, so a test's
	// simulated power cut (vfs/crashfs) covers the log, which is what an
	// acknowledged write rests on, and takes bbolt's file as a kill -9
	// would leave it.
	FS vfs.FS
	// Synced, when set, is told after each sync of the log how many
	// writes it made durable together (the group) and how long the
	// fdatasync took: for metrics. It runs on the syncer, so it must be
	// quick.
	Synced func(writes int, took time.Duration)
}

const (
	// maxGroup bounds how many waiting writes one frame takes.
	maxGroup = 512
	// idleCheckpoint is how long the log may hold writes while no new
	// ones come before they are checkpointed, keeping restarts short.
	idleCheckpoint = time.Second
)

// DB is a bbolt file NAME.db in a folder, with its log beside it.
type DB struct {
	db   *bolt.DB
	logf logFiles
	log  *slog.Logger
	opt  Options

	mu     sync.RWMutex // guards the fields up to reqs
	closed bool
	// crashed makes Close leave the files as a kill -9 would, without the
	// final checkpoint: for tests of recovery.
	crashed   bool
	cur       *overlay // synced writes of the active segment; immutable once published
	frozen    *overlay // writes of the previous segment while its checkpoint runs
	published uint64   // the last batch in cur
	broken    error    // a failed log write, sync or checkpoint: no more writes

	reqs  chan *request
	syncq chan *batch // written batches, in order, for the syncer
	stop  chan struct{}
	done  chan struct{}

	// Owned by loop.
	seg      *segment
	spare    vfs.File              // the next segment; nil while a checkpoint runs
	ckpt     chan checkpointResult // the running checkpoint's; nil when none runs
	frame    []byte
	sent     uint64   // the last batch sent to the syncer
	inflight []*batch // batches sent with writes, not known to be in cur yet
}

// request is one Write, Update or Dump for the loop.
type request struct {
	write  func(tx *Tx) error
	update func(tx *Tx) error
	cut    func() // a Dump's; the loop answers it with view
	view   *Tx
	done   chan error
}

type checkpointResult struct {
	spare vfs.File
	err   error
}

// ErrClosed answers writes after Close.
var ErrClosed = errors.New("boltlog: closed")

var errReadOnly = errors.New("boltlog: write in a read-only transaction")

// Open opens dir/NAME.db, checkpoints whatever its log holds from before a
// crash, and starts a fresh log.
func Open(dir, name string, opt Options) (*DB, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.RotateAt == 0 {
		opt.RotateAt = segmentSize
	}
	if opt.RotateDeletes == 0 {
		opt.RotateDeletes = 256
	}
	if opt.Bolt == nil {
		opt.Bolt = &bolt.Options{
			Timeout:         5 * time.Second,
			NoFreelistSync:  true,
			FreelistType:    bolt.FreelistMapType,
			InitialMmapSize: 64 << 20,
		}
	}
	opt.FS = vfs.Or(opt.FS)
	if err := vfs.MkdirPrivate(opt.FS, dir); err != nil {
		return nil, fmt.Errorf("boltlog: create %s: %w", dir, err)
	}
	bdb, err := bolt.Open(filepath.Join(dir, name+".db"), 0o600, opt.Bolt)
	if err != nil {
		return nil, fmt.Errorf("boltlog: open %s: %w", name, err)
	}
	db := &DB{
		db:    bdb,
		logf:  logFiles{fs: opt.FS, dir: dir, name: name},
		log:   opt.Logger,
		opt:   opt,
		cur:   newOverlay(),
		reqs:  make(chan *request, maxGroup),
		syncq: make(chan *batch, 64),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if err := db.recover(); err != nil {
		bdb.Close()
		return nil, err
	}
	go db.loop()
	go db.syncer()
	return db, nil
}

// recover applies what the log holds to bbolt, in order (again, if it was
// applied already: every record sets a key or a bucket to how it was
// left, so the last record of each decides), and starts a new log.
func (db *DB) recover() error {
	frames, last, err := db.logf.replay()
	if err != nil {
		return err
	}
	writes := newOverlay()
	flush := func() error {
		if writes.empty() {
			return nil
		}
		err := db.db.Update(writes.checkpointInto)
		writes = newOverlay()
		return err
	}
	for _, f := range frames {
		if f.kind == frameWrites {
			for _, c := range f.changes {
				writes.set(c)
			}
			continue
		}
		if err := flush(); err != nil {
			return fmt.Errorf("boltlog: replay log: %w", err)
		}
		if err := db.db.Update(func(tx *bolt.Tx) error { return applyUpdate(tx, f.changes) }); err != nil {
			return fmt.Errorf("boltlog: replay log: %w", err)
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("boltlog: replay log: %w", err)
	}
	db.seg, db.spare, err = db.logf.reset(last + 1)
	return err
}

// Write runs fn against the database as it is, with the writes of the
// same group before it, and makes what fn wrote durable before it
// returns. When fn returns an error, nothing it wrote is kept, and Write
// returns that error.
func (db *DB) Write(fn func(tx *Tx) error) error {
	return db.send(&request{write: fn})
}

// Apply logs and applies a frame another database shipped (Options.Ship),
// so that this one, a replica, holds what that one does. Frames must come
// in the order they were shipped.
func (db *DB) Apply(frame []byte) error {
	f, err := decodeFrame(frame)
	if err != nil {
		return err
	}
	if f.kind == frameUpdate {
		return db.Update(func(tx *Tx) error {
			if err := applyUpdate(tx.bolt, f.changes); err != nil {
				return err
			}
			*tx.update = append(*tx.update, f.changes...)
			return nil
		})
	}
	return db.Write(func(tx *Tx) error {
		for _, c := range f.changes {
			tx.own.set(c)
		}
		return nil
	})
}

// Update runs fn once every logged write is in bbolt, on bbolt itself:
// for making and deleting buckets, and other rare changes. What fn writes
// is logged before it is committed.
func (db *DB) Update(fn func(tx *Tx) error) error {
	return db.send(&request{update: fn})
}

func (db *DB) send(r *request) error {
	r.done = make(chan error, 1)
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	db.reqs <- r
	db.mu.RUnlock()
	return <-r.done
}

// View runs fn against a consistent view of the database.
func (db *DB) View(fn func(tx *Tx) error) error {
	tx, err := db.begin()
	if err != nil {
		return err
	}
	defer tx.bolt.Rollback()
	return fn(tx)
}

// begin opens a read-only view of the published writes and bbolt; the
// caller rolls its bbolt transaction back.
func (db *DB) begin() (*Tx, error) {
	db.mu.RLock()
	cur, frozen := db.cur, db.frozen
	db.mu.RUnlock()
	// Opened after reading frozen: what a finished checkpoint took out of
	// the overlays is in this transaction.
	btx, err := db.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("boltlog: read: %w", err)
	}
	return &Tx{bolt: btx, layers: []*overlay{cur, frozen}}, nil
}

// Close finishes queued writes, checkpoints the log and closes the file.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	db.mu.Unlock()
	close(db.stop)
	<-db.done
	if err := db.db.Close(); err != nil {
		return fmt.Errorf("boltlog: close: %w", err)
	}
	return nil
}

// Tx is a view of the database for one Write, View or Update.
type Tx struct {
	bolt   *bolt.Tx
	layers []*overlay // newest first; own is the first when writable
	own    *overlay   // a Write's writes
	update *[]change  // an Update's records, its changes being made in bolt as they come
}

var errNotUpdate = errors.New("boltlog: buckets are made and deleted in Update only")

// Bolt is the bbolt transaction beneath, to read: it sees the bucket
// structure as it is, but not the writes still in the log.
func (tx *Tx) Bolt() *bolt.Tx { return tx.bolt }

// Bucket returns a top-level bucket, or nil when it does not exist.
func (tx *Tx) Bucket(name []byte) *Bucket {
	b := tx.bolt.Bucket(name)
	if b == nil {
		return nil
	}
	return &Bucket{tx: tx, id: bucketID("", name), b: b}
}

// CreateBucketIfNotExists makes a top-level bucket, in an Update.
func (tx *Tx) CreateBucketIfNotExists(name []byte) (*Bucket, error) {
	if tx.update == nil {
		return nil, errNotUpdate
	}
	b, err := tx.bolt.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return tx.made(bucketID("", name), b), nil
}

// DeleteBucket deletes a top-level bucket and all it holds, in an Update.
func (tx *Tx) DeleteBucket(name []byte) error {
	if tx.update == nil {
		return errNotUpdate
	}
	if err := tx.bolt.DeleteBucket(name); err != nil {
		return err
	}
	*tx.update = append(*tx.update, change{op: opRmBucket, bucket: bucketID("", name)})
	return nil
}

func (tx *Tx) made(id string, b *bolt.Bucket) *Bucket {
	*tx.update = append(*tx.update, change{op: opMkBucket, bucket: id})
	return &Bucket{tx: tx, id: id, b: b}
}

// Bucket is a bbolt bucket seen through the log.
type Bucket struct {
	tx *Tx
	id string
	b  *bolt.Bucket
}

// Bucket returns a nested bucket, or nil when it does not exist.
func (b *Bucket) Bucket(name []byte) *Bucket {
	nb := b.b.Bucket(name)
	if nb == nil {
		return nil
	}
	return &Bucket{tx: b.tx, id: bucketID(b.id, name), b: nb}
}

// CreateBucket makes a nested bucket, in an Update; it fails when one of
// that name exists.
func (b *Bucket) CreateBucket(name []byte) (*Bucket, error) {
	if b.tx.update == nil {
		return nil, errNotUpdate
	}
	nb, err := b.b.CreateBucket(name)
	if err != nil {
		return nil, err
	}
	return b.tx.made(bucketID(b.id, name), nb), nil
}

// CreateBucketIfNotExists makes a nested bucket, in an Update.
func (b *Bucket) CreateBucketIfNotExists(name []byte) (*Bucket, error) {
	if b.tx.update == nil {
		return nil, errNotUpdate
	}
	nb, err := b.b.CreateBucketIfNotExists(name)
	if err != nil {
		return nil, err
	}
	return b.tx.made(bucketID(b.id, name), nb), nil
}

// DeleteBucket deletes a nested bucket and all it holds, in an Update.
func (b *Bucket) DeleteBucket(name []byte) error {
	if b.tx.update == nil {
		return errNotUpdate
	}
	if err := b.b.DeleteBucket(name); err != nil {
		return err
	}
	*b.tx.update = append(*b.tx.update, change{op: opRmBucket, bucket: bucketID(b.id, name)})
	return nil
}

// ForEach calls fn with each key and value in order, as a Cursor sees
// them, until fn returns an error.
func (b *Bucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Get returns key's value, nil when absent. It is valid during the
// transaction and must not be modified.
func (b *Bucket) Get(key []byte) []byte {
	for _, o := range b.tx.layers {
		if it, ok := o.get(b.id, key); ok {
			return it.val
		}
	}
	return b.b.Get(key)
}

// Put sets key to val. Neither may be modified afterwards.
func (b *Bucket) Put(key, val []byte) error {
	if val == nil {
		val = []byte{} // nil marks a deleted key
	}
	return b.record(change{bucket: b.id, key: key, val: val})
}

// Delete removes key.
func (b *Bucket) Delete(key []byte) error {
	return b.record(change{bucket: b.id, key: key})
}

func (b *Bucket) record(c change) error {
	switch {
	case b.tx.update != nil:
		var err error
		if c.val == nil {
			err = b.b.Delete(c.key)
		} else {
			err = b.b.Put(c.key, c.val)
		}
		if err != nil {
			return err
		}
		*b.tx.update = append(*b.tx.update, c)
	case b.tx.own != nil:
		b.tx.own.set(c)
	default:
		return errReadOnly
	}
	return nil
}

// Cursor iterates the bucket's keys in order, the log's versions merged
// with bbolt's. It stays valid while the transaction writes.
func (b *Bucket) Cursor() *Cursor { return &Cursor{b: b, bc: b.b.Cursor()} }

// Cursor is a position in a Bucket.
type Cursor struct {
	b      *Bucket
	bc     *bolt.Cursor
	bk, bv []byte // bbolt's cursor, at or after the position
	key    []byte // last key returned; nil at the end
}

func (c *Cursor) First() (key, val []byte) {
	c.bk, c.bv = c.bc.First()
	return c.from(nil, true)
}

func (c *Cursor) Seek(seek []byte) (key, val []byte) {
	c.bk, c.bv = c.bc.Seek(seek)
	return c.from(seek, true)
}

func (c *Cursor) Next() (key, val []byte) {
	if c.key == nil {
		return nil, nil
	}
	return c.from(c.key, false)
}

// from moves to the first live key at or after start (after, when
// inclusive is false): the smallest key among bbolt and the overlays, the
// newest version of it, skipping deleted ones.
func (c *Cursor) from(start []byte, inclusive bool) ([]byte, []byte) {
	for {
		for c.bk != nil && start != nil && (bytes.Compare(c.bk, start) < 0 || !inclusive && bytes.Equal(c.bk, start)) {
			c.bk, c.bv = c.bc.Next()
		}
		key, val, logged := c.bk, c.bv, false
		for _, o := range c.b.tx.layers {
			it, ok := o.first(c.b.id, start, inclusive)
			if !ok {
				continue
			}
			// Layers come newest first: an equal key replaces bbolt's
			// version, not a newer layer's.
			if cmp := compareKeys(it.key, key); cmp < 0 || cmp == 0 && !logged {
				key, val, logged = it.key, it.val, true
			}
		}
		c.key = key
		if key == nil {
			return nil, nil
		}
		if logged && val == nil {
			start, inclusive = key, false // deleted
			continue
		}
		return key, val
	}
}

// Last moves to the last live key.
func (c *Cursor) Last() (key, val []byte) { return c.before(nil, true) }

// Prev moves to the live key before the current one.
func (c *Cursor) Prev() (key, val []byte) {
	if c.key == nil {
		return nil, nil
	}
	return c.before(c.key, false)
}

// before is from backwards: the last live key at or before end (before,
// when inclusive is false; end nil is the end of the bucket).
func (c *Cursor) before(end []byte, inclusive bool) ([]byte, []byte) {
	for {
		if end == nil {
			c.bk, c.bv = c.bc.Last()
		} else if c.bk, c.bv = c.bc.Seek(end); c.bk == nil {
			c.bk, c.bv = c.bc.Last()
		} else if !inclusive || !bytes.Equal(c.bk, end) {
			c.bk, c.bv = c.bc.Prev()
		}
		key, val, logged := c.bk, c.bv, false
		for _, o := range c.b.tx.layers {
			it, ok := o.last(c.b.id, end, inclusive)
			if !ok {
				continue
			}
			if cmp := bytes.Compare(it.key, key); key == nil || cmp > 0 || cmp == 0 && !logged {
				key, val, logged = it.key, it.val, true
			}
		}
		c.key = key
		if key == nil {
			return nil, nil
		}
		if logged && val == nil {
			end, inclusive = key, false // deleted
			continue
		}
		return key, val
	}
}

// compareKeys orders keys with nil, the end, after every key.
func compareKeys(a, b []byte) int {
	switch {
	case b == nil:
		return -1
	case a == nil:
		return 1
	}
	return bytes.Compare(a, b)
}

// checkpointInto writes the overlay's versions into bbolt.
func (o *overlay) checkpointInto(tx *bolt.Tx) error {
	for id, t := range o.buckets {
		b, err := resolve(tx, id)
		if err != nil {
			return err
		}
		if b == nil {
			continue // deleted since, with its keys
		}
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

// applyUpdate replays an Update's records in order.
func applyUpdate(tx *bolt.Tx, changes []change) error {
	for _, c := range changes {
		path, err := bucketPath(c.bucket)
		if err != nil {
			return err
		}
		switch c.op {
		case opMkBucket:
			b, err := tx.CreateBucketIfNotExists(path[0])
			for _, name := range path[1:] {
				if err != nil {
					break
				}
				b, err = b.CreateBucketIfNotExists(name)
			}
			if err != nil {
				return err
			}
		case opRmBucket:
			parent, err := resolve(tx, c.bucket[:len(c.bucket)-len(bucketID("", path[len(path)-1]))])
			if err != nil {
				return err
			}
			switch {
			case len(path) == 1:
				err = tx.DeleteBucket(path[0])
			case parent != nil:
				err = parent.DeleteBucket(path[len(path)-1])
			}
			if err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
		default:
			b, err := resolve(tx, c.bucket)
			if err != nil {
				return err
			}
			if b == nil {
				continue // deleted later in the history
			}
			if c.val == nil {
				err = b.Delete(c.key)
			} else {
				err = b.Put(c.key, c.val)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// resolve finds the bucket a bucketID names; nil when it does not exist.
func resolve(tx *bolt.Tx, id string) (*bolt.Bucket, error) {
	if id == "" {
		return nil, nil
	}
	path, err := bucketPath(id)
	if err != nil {
		return nil, err
	}
	b := tx.Bucket(path[0])
	for _, name := range path[1:] {
		if b == nil {
			return nil, nil
		}
		b = b.Bucket(name)
	}
	return b, nil
}
