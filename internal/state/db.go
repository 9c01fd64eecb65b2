package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/vfs"
)

// ErrInvalid is returned by Apply for an operation without a kind or key,
// or with a key or kind too long to store; nothing of the batch was applied.
var ErrInvalid = errors.New("state: invalid operation")

// On disk, every kind is a bucket named kindPrefix+kind whose values carry
// an 8-byte big-endian Rev before the object's bytes; the sys bucket holds
// the store index. The prefix keeps a user kind (even "meta") from ever
// colliding with the store's own bucket.
const (
	kindPrefix = "k:"
	revSize    = 8
)

var (
	sysBucket = []byte("sys")
	indexKey  = []byte("index")
)

// openTimeout bounds how long Open waits for another process to release
// the file lock, so a second server on the same data directory fails
// instead of hanging.
const openTimeout = 5 * time.Second

// DB is the single-server Store: bbolt on disk, a full copy in memory.
// Reads never touch bbolt. Writes go through one commit loop that gathers
// every batch waiting at that moment into one bbolt transaction, so
// concurrent writers share an fsync (group commit) while each batch still
// gets its own index.
type DB struct {
	bolt *bolt.DB
	log  *slog.Logger

	// mu guards the fields readers see.
	mu      sync.RWMutex
	v       *view
	changed chan struct{} // closed and replaced on every change; wakes Wait
	closed  bool

	// qmu guards the queue of batches waiting for the commit loop.
	qmu      sync.Mutex
	queue    []*request
	stopping bool
	kick     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}

	// writeMu serializes everything that changes the view or the file
	// (commits and Restore). Holding it is enough to read v without mu,
	// because every writer of v holds it too.
	writeMu sync.Mutex
}

var _ Store = (*DB)(nil)

// Open opens the store in the bbolt file at path, creating it if needed,
// and loads everything into memory. It fails if another process holds the
// file for longer than a few seconds.
func Open(path string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	// bbolt syncs the file it creates, not its name in the directory:
	// without this, a power cut can lose a new database with every write
	// acknowledged to it. Done at every open, since an earlier one may
	// have been cut before it.
	if err := vfs.OS.SyncDir(filepath.Dir(path)); err != nil {
		b.Close()
		return nil, fmt.Errorf("state: open %s: sync its directory: %w", path, err)
	}
	v, err := load(b)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("state: load %s: %w", path, err)
	}
	db := &DB{
		bolt:     b,
		log:      logger,
		v:        v,
		changed:  make(chan struct{}),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	go db.run()
	logger.Debug("state opened", "path", path, "index", v.index)
	return db, nil
}

// load reads the whole file into a view. bbolt returns keys in byte
// order, which is Go's string order, so every table is built by appends.
func load(b *bolt.DB) (*view, error) {
	v := newView()
	err := b.View(func(tx *bolt.Tx) error {
		if sys := tx.Bucket(sysBucket); sys != nil {
			if raw := sys.Get(indexKey); len(raw) == revSize {
				v.index = binary.BigEndian.Uint64(raw)
			}
		}
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			kind, ok := strings.CutPrefix(string(name), kindPrefix)
			if !ok {
				return nil
			}
			return bk.ForEach(func(k, raw []byte) error {
				if len(raw) < revSize {
					return fmt.Errorf("kind %s key %q: short record", kind, k)
				}
				v.put(Entry{
					Kind:  kind,
					Key:   string(k),
					Rev:   binary.BigEndian.Uint64(raw),
					Value: cloneBytes(raw[revSize:]), // bbolt's memory dies with the transaction
				})
				return nil
			})
		})
	})
	v.loaded()
	return v, err
}

// Get returns the entry for kind/key, and false when there is none or the
// store is closed. Value is shared with the store: do not modify it.
func (db *DB) Get(kind, key string) (Entry, bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return Entry{}, false
	}
	return db.v.get(kind, key)
}

// List returns the entries of kind whose keys start with prefix, sorted by
// key; nil when there are none or the store is closed. Values are shared
// with the store: do not modify them.
func (db *DB) List(kind, prefix string) []Entry {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil
	}
	t, ok := db.v.tables[kind]
	if !ok {
		return nil
	}
	return t.list(prefix)
}

// ListAfter is List's entries whose keys come after after, at most n.
func (db *DB) ListAfter(kind, prefix, after string, n int) []Entry {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil
	}
	t, ok := db.v.tables[kind]
	if !ok {
		return nil
	}
	return t.listAfter(prefix, after, n)
}

// Since returns what changed in kind after index after: the entries
// written since, as they are now, in key order, and the keys deleted
// since; and the index that is as of. When it cannot tell (after is
// older than it remembers, or from before a Restore), it returns every
// entry of kind and all true. Values are shared with the store.
func (db *DB) Since(kind string, after uint64) (changed []Entry, deleted []string, index uint64, all bool) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return nil, nil, 0, true
	}
	if changed, deleted, ok := db.v.since(kind, after); ok {
		return changed, deleted, db.v.index, false
	}
	var entries []Entry
	if t, ok := db.v.tables[kind]; ok {
		entries = t.list("")
	}
	return entries, nil, db.v.index, true
}

// Index returns the index of the last applied batch (0 for a new store).
func (db *DB) Index() uint64 {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.v.index
}

// Wait blocks until Index() > after and returns the index. It returns
// ctx's error when ctx ends first and ErrClosed when the store closes.
func (db *DB) Wait(ctx context.Context, after uint64) (uint64, error) {
	for {
		db.mu.RLock()
		idx, ch, closed := db.v.index, db.changed, db.closed
		db.mu.RUnlock()
		if idx > after {
			return idx, nil
		}
		if closed {
			return idx, ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return idx, ctx.Err()
		}
	}
}

// Close commits the batches already submitted, wakes every Wait and
// releases the file. Later calls return ErrClosed.
func (db *DB) Close() error {
	db.qmu.Lock()
	if db.stopping {
		db.qmu.Unlock()
		return ErrClosed
	}
	db.stopping = true
	db.qmu.Unlock()
	close(db.stop)
	<-db.loopDone

	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.mu.Lock()
	db.closed = true
	close(db.changed)
	db.mu.Unlock()
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// publish swaps in the new view state and wakes waiters. The caller holds
// writeMu and has already changed the file.
func (db *DB) publish(change func(v *view)) {
	db.mu.Lock()
	change(db.v)
	close(db.changed)
	db.changed = make(chan struct{})
	db.mu.Unlock()
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
