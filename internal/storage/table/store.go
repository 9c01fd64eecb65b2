package table

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// On disk every account is a top-level bucket "a/<account>" holding a
// "tables" bucket (lower-cased name → name as created, since table names
// are unique regardless of case) and one bucket "t/<lower-cased name>" of
// entities per table.
var tablesBucket = []byte("tables")

func accountBucketName(account string) []byte { return []byte("a/" + account) }
func tableBucketName(lower string) []byte     { return []byte("t/" + lower) }

// store is the tables in a boltlog database: entity writes go through its
// write-ahead log, changes of tables (create, delete, ACL) to bbolt.
type store struct {
	db       *boltlog.DB
	lastTick atomic.Int64 // last Timestamp handed out, in ticks
}

func openStore(dir string, opt boltlog.Options) (*store, error) {
	db, err := boltlog.Open(dir, "table", opt)
	if err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

// write runs an entity write against a table durably: fn checks its
// operation against the table as it is and writes, or returns a refusal
// (such as a 409), which writes nothing. It returns fn's error, the
// store's, or TableNotFound.
func (s *store) write(account, lower string, fn func(b *boltlog.Bucket) error) error {
	return s.db.Write(func(tx *boltlog.Tx) error {
		b := tableBucket(tx, account, lower)
		if b == nil {
			return tableNotFound()
		}
		return fn(b)
	})
}

// update changes tables themselves: made, deleted, their policies.
func (s *store) update(fn func(tx *boltlog.Tx) error) error { return s.db.Update(fn) }

func (s *store) view(fn func(tx *boltlog.Tx) error) error { return s.db.View(fn) }

// entity returns the stored value of key in a table, nil when absent.
func (s *store) entity(account, lower string, key []byte) ([]byte, error) {
	var val []byte
	err := s.db.View(func(tx *boltlog.Tx) error {
		b := tableBucket(tx, account, lower)
		if b == nil {
			return tableNotFound()
		}
		val = bytes.Clone(b.Get(key))
		return nil
	})
	return val, err
}

// scan calls fn with each entity of a table in key order, from lo up to
// hi (nil: the end), until fn returns false. v is valid only during fn.
func (s *store) scan(account, lower string, lo, hi []byte, fn func(k, v []byte) (bool, error)) error {
	return s.db.View(func(tx *boltlog.Tx) error {
		b := tableBucket(tx, account, lower)
		if b == nil {
			return tableNotFound()
		}
		c := b.Cursor()
		for k, v := c.Seek(lo); k != nil && (hi == nil || bytes.Compare(k, hi) < 0); k, v = c.Next() {
			if more, err := fn(k, v); err != nil || !more {
				return err
			}
		}
		return nil
	})
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
func tableBucket(tx *boltlog.Tx, account, lower string) *boltlog.Bucket {
	a := tx.Bucket(accountBucketName(account))
	if a == nil {
		return nil
	}
	return a.Bucket(tableBucketName(lower))
}
