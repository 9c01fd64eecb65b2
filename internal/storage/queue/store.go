package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
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
	Seq          uint64 `json:"seq"` // insertion order in this process, the tie-break among messages due in the same nanosecond
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
func queueBucket(tx *boltlog.Tx, account, name string) (*boltlog.Bucket, error) {
	b := tx.Bucket(bktQueues).Bucket(queueKey(account, name))
	if b == nil {
		return nil, errQueueNotFound()
	}
	return b, nil
}

func readMeta(b *boltlog.Bucket) (queueMeta, error) {
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

func writeMeta(b *boltlog.Bucket, m queueMeta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("queue: encoding queue metadata: %w", err)
	}
	return b.Put(keyMeta, data)
}

func count(b *boltlog.Bucket) int64 {
	v := b.Get(keyCount)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func addCount(b *boltlog.Bucket, d int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(max(count(b)+d, 0)))
	return b.Put(keyCount, v[:])
}

func getMessage(b *boltlog.Bucket, id string) (*message, error) {
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

func putMessage(b *boltlog.Bucket, id string, m *message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("queue: encoding message: %w", err)
	}
	if err := b.Bucket(bktMsgs).Put([]byte(id), data); err != nil {
		return err
	}
	return b.Bucket(bktVis).Put(visKey(m, id), nil)
}

func deleteMessage(b *boltlog.Bucket, id string, m *message) error {
	if err := b.Bucket(bktVis).Delete(visKey(m, id)); err != nil {
		return err
	}
	if err := b.Bucket(bktMsgs).Delete([]byte(id)); err != nil {
		return err
	}
	return addCount(b, -1)
}
