package table

import (
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
)

// On disk every account is a top-level bucket "a/<account>" holding a
// "tables" bucket (lower-cased name → name as created, since table names
// are unique regardless of case) and one bucket "t/<lower-cased name>" of
// entities per table.
var tablesBucket = []byte("tables")

func accountBucketName(account string) []byte { return []byte("a/" + account) }
func tableBucketName(lower string) []byte     { return []byte("t/" + lower) }

// maxGroup bounds how many waiting writes one bbolt transaction takes, so
// one commit cannot grow without limit under a flood of writers.
const maxGroup = 512

// store is bbolt with a group-commit writer: every write waiting while the
// previous commit ran is applied in one transaction and shares one fsync.
type store struct {
	db  *bolt.DB
	log *slog.Logger

	mu     sync.RWMutex // held shared by senders; exclusively by close
	closed bool
	reqs   chan *commitReq
	stop   chan struct{}
	done   chan struct{}

	lastTick atomic.Int64 // last Timestamp handed out, in ticks
}

// commitReq is one write. fn must leave the transaction untouched when it
// reports a failure of the request itself (such as a 409) through its own
// closure, and return an error only for a failure of the store; it may run
// twice, so it must reset whatever it reports at its start.
type commitReq struct {
	fn   func(tx *bolt.Tx) error
	done chan error
}

var errClosed = errors.New("table: store closed")

func openStore(dir string, logger *slog.Logger) (*store, error) {
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
	s := &store{
		db:   db,
		log:  logger,
		reqs: make(chan *commitReq, maxGroup),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go s.loop()
	return s, nil
}

// update applies fn in a durable transaction and returns once it is on
// disk, or with the store's error.
func (s *store) update(fn func(tx *bolt.Tx) error) error {
	r := &commitReq{fn: fn, done: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	s.reqs <- r
	s.mu.RUnlock()
	return <-r.done
}

func (s *store) view(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

func (s *store) loop() {
	defer close(s.done)
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
			s.commit(group)
		case <-s.stop:
			// Senders stopped before stop closed; finish what they queued.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*commitReq{r})
				default:
					return
				}
			}
		}
	}
}

func (s *store) commit(group []*commitReq) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, r := range group {
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	// One write broke the shared transaction; give each its own so the
	// others still succeed and only the culprit sees the failure.
	s.log.Warn("table: group commit failed, retrying writes one by one", "writes", len(group), "err", err)
	for _, r := range group {
		r.done <- s.db.Update(r.fn)
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
