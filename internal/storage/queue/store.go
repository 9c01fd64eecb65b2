package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/storage"
)

// The store is one bbolt file. The top-level bucket "queues" holds one
// bucket per queue, named ACCOUNT "/" QUEUE, and each queue bucket holds:
//
//	"meta" -> queueMeta (JSON)
//	"n"    -> approximate message count (uint64, big endian)
//	"m"    -> bucket: message id -> message (JSON)
//	"v"    -> bucket: next-visible time (8 bytes, big endian unix ns) +
//	          insertion sequence (8 bytes) + id -> nil
//
// "v" is the visibility index: Get Messages seeks to its start and reads
// only the messages due now, however long the queue is.
var (
	bktQueues  = []byte("queues")
	bktService = []byte("service") // account -> service properties XML
	keyMeta    = []byte("meta")
	keyCount   = []byte("n")
	bktMsgs    = []byte("m")
	bktVis     = []byte("v")
)

type queueMeta struct {
	Metadata storage.Metadata           `json:"metadata,omitempty"`
	Policies []storage.SignedIdentifier `json:"si,omitempty"` // stored access policies, in the order set
	// LegacyACL is how policies were kept before they were enforced: the
	// SignedIdentifiers XML. readMeta moves it to Policies.
	LegacyACL []byte `json:"acl,omitempty"`
}

type message struct {
	Text         string `json:"text"`
	Inserted     int64  `json:"ins"` // unix ns
	Expires      int64  `json:"exp"` // unix ns; neverExpires for a TTL of -1
	NextVisible  int64  `json:"vis"` // unix ns
	DequeueCount int64  `json:"dq"`
	PopReceipt   string `json:"pr,omitempty"`
	Seq          uint64 `json:"seq"` // insertion order, the tie-break among messages due at once
}

func queueKey(account, name string) []byte { return []byte(account + "/" + name) }

func visKey(m *message, id string) []byte {
	k := make([]byte, 16, 16+len(id))
	binary.BigEndian.PutUint64(k, uint64(m.NextVisible))
	binary.BigEndian.PutUint64(k[8:], m.Seq)
	return append(k, id...)
}

func visID(k []byte) string { return string(k[16:]) }

func visTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[:8])) }

// queueBucket returns the queue's bucket or 404 QueueNotFound.
func queueBucket(tx *bolt.Tx, account, name string) (*bolt.Bucket, error) {
	b := tx.Bucket(bktQueues).Bucket(queueKey(account, name))
	if b == nil {
		return nil, errQueueNotFound()
	}
	return b, nil
}

func readMeta(b *bolt.Bucket) (queueMeta, error) {
	var m queueMeta
	if err := json.Unmarshal(b.Get(keyMeta), &m); err != nil {
		return m, fmt.Errorf("queue: reading queue metadata: %w", err)
	}
	if len(m.LegacyACL) > 0 {
		m.Policies, _ = storage.ReadSignedIdentifiers(bytes.NewReader(m.LegacyACL), storage.QueuePolicyPermissions)
		m.LegacyACL = nil
	}
	return m, nil
}

func writeMeta(b *bolt.Bucket, m queueMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("queue: encoding queue metadata: %w", err)
	}
	return b.Put(keyMeta, data)
}

func count(b *bolt.Bucket) int64 {
	v := b.Get(keyCount)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func addCount(b *bolt.Bucket, d int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(max(count(b)+d, 0)))
	return b.Put(keyCount, v[:])
}

func getMessage(b *bolt.Bucket, id string) (*message, error) {
	v := b.Bucket(bktMsgs).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var m message
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("queue: reading message %s: %w", id, err)
	}
	return &m, nil
}

func putMessage(b *bolt.Bucket, id string, m *message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("queue: encoding message: %w", err)
	}
	if err := b.Bucket(bktMsgs).Put([]byte(id), data); err != nil {
		return err
	}
	return b.Bucket(bktVis).Put(visKey(m, id), nil)
}

func deleteMessage(b *bolt.Bucket, id string, m *message) error {
	if err := b.Bucket(bktVis).Delete(visKey(m, id)); err != nil {
		return err
	}
	if err := b.Bucket(bktMsgs).Delete([]byte(id)); err != nil {
		return err
	}
	return addCount(b, -1)
}

// Group commit: writers hand their transaction function to one committer
// goroutine, which runs every function waiting at that moment in a single
// bbolt transaction and one fsync, then answers them all. Nothing waits
// for a timer, so a lone writer pays one fsync and concurrent writers
// share one.
//
// A function must not modify the transaction before it returns a
// *storage.Error (a refusal): refusals do not abort the group. Any other
// error aborts the group's transaction, and then each function is run
// again alone so one failure does not fail the others. Functions may thus
// run more than once and must set their results afresh on each run.

type commitReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

type committer struct {
	db     *bolt.DB
	reqs   chan *commitReq
	closed chan struct{}
	wg     sync.WaitGroup
}

const maxGroup = 256

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, reqs: make(chan *commitReq, maxGroup), closed: make(chan struct{})}
	c.wg.Add(1)
	go c.run()
	return c
}

var errClosed = errors.New("queue: service closed")

// update runs fn in a write transaction that is on disk when it returns nil.
func (c *committer) update(fn func(*bolt.Tx) error) error {
	req := &commitReq{fn: fn, done: make(chan error, 1)}
	select {
	case c.reqs <- req:
	case <-c.closed:
		return errClosed
	}
	return <-req.done
}

func (c *committer) close() {
	close(c.closed)
	c.wg.Wait()
}

func (c *committer) run() {
	defer c.wg.Done()
	for {
		var first *commitReq
		select {
		case first = <-c.reqs:
		case <-c.closed:
			// Answer whoever got in before the close.
			for {
				select {
				case r := <-c.reqs:
					r.done <- errClosed
				default:
					return
				}
			}
		}
		group := []*commitReq{first}
	fill:
		for len(group) < maxGroup {
			select {
			case r := <-c.reqs:
				group = append(group, r)
			default:
				break fill
			}
		}
		c.commit(group)
	}
}

func (c *committer) commit(group []*commitReq) {
	errs := make([]error, len(group))
	err := c.db.Update(func(tx *bolt.Tx) error {
		for i, r := range group {
			errs[i] = r.fn(tx)
			var refusal *storage.Error
			if errs[i] != nil && !errors.As(errs[i], &refusal) {
				return errs[i]
			}
		}
		return nil
	})
	if err != nil && len(group) > 1 {
		for _, r := range group {
			r.done <- c.db.Update(r.fn)
		}
		return
	}
	for i, r := range group {
		if err != nil {
			r.done <- err
		} else {
			r.done <- errs[i]
		}
	}
}
