// Package state is the controller's store: a versioned key-value store of JSON
// objects, grouped in kinds, changed only through atomic batches of operations.
//
// Every batch is a self-contained command (puts, deletes and revision checks),
// which is exactly what a Raft FSM applies: a single server applies batches
// directly to its embedded database; a cluster will replicate the same batches
// through Raft and apply them in log order on every server. Readers see an
// in-memory copy and can block until the store moves past an index.
//
// DB (Open) is the single-server Store on a bbolt file. Concurrent Apply
// calls share fsyncs: batches waiting at the same moment are written in one
// transaction, each still with its own index, in arrival order. Values that
// Get and List return are shared with the store and must not be modified.
// Snapshot writes JSON lines (see snapshot.go); Restore accepts only a
// complete stream and replaces everything atomically.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"io"
)

// Kinds of objects the controller keeps.
const (
	KindNodes     = "nodes"
	KindServices  = "services"
	KindInstances = "instances"
	KindPackages  = "packages"
	KindAccounts  = "accounts" // storage accounts
	KindImages    = "images"
	KindMeta      = "meta"
	KindUsage     = "usage"    // hourly usage buckets (internal/metering)
	KindMetering  = "metering" // the meter's cursor and the rate card
	KindDrives    = "drives"   // drives (internal/drives), keyed TENANT/NAME
	// KindExtensions holds published extensions (internal/extensions),
	// keyed TENANT/NAME/VERSION.
	KindExtensions = "extensions"
)

// ErrConflict is returned by Apply when a revision check fails; nothing of the
// batch was applied.
var ErrConflict = errors.New("state: revision check failed")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("state: store closed")

// ErrUnavailable is matched (errors.Is) by the errors of a replicated
// store after which the same request may succeed when made again, here a
// moment later or at another server: this server is not the leader, or it
// lost leadership before it knew whether a batch committed. A single-server
// store never returns it.
var ErrUnavailable = errors.New("state: unavailable")

// ErrUnknownOutcome is matched, besides ErrUnavailable, by the errors of a
// replicated store that lost leadership after a batch entered its log but
// before it knew whether the batch committed: the batch may or may not be
// applied. A request that is not idempotent must not simply be made again.
var ErrUnknownOutcome = errors.New("state: outcome unknown")

// Entry is one stored object.
type Entry struct {
	Kind  string
	Key   string
	Value []byte // JSON
	Rev   uint64 // the store index of the batch that last wrote it
}

// Op is one operation of a batch.
type Op struct {
	Kind   string
	Key    string
	Value  []byte // the new value; ignored by deletes and checks
	Delete bool   // delete the key (deleting an absent key is not an error)
	// Check makes the operation a precondition: the key's current Rev must
	// equal Rev (0: the key must not exist). A check never writes.
	Check bool
	Rev   uint64
}

// Store is the controller's state.
type Store interface {
	// Apply applies the batch atomically and returns the new index. When it
	// returns nil the batch is durable (fsynced; with Raft, on a quorum).
	// A failed check returns ErrConflict and applies nothing.
	Apply(ctx context.Context, ops []Op) (uint64, error)
	// Get returns the entry for kind/key, and false when there is none.
	Get(kind, key string) (Entry, bool)
	// List returns the entries of a kind whose keys start with prefix, sorted by key.
	List(kind, prefix string) []Entry
	// ListAfter returns List's entries whose keys come after after (""
	// for the first), at most n of them: a page of a long list.
	ListAfter(kind, prefix, after string, n int) []Entry
	// Index is the index of the last applied batch.
	Index() uint64
	// Wait blocks until Index() > after or ctx ends, and returns the index.
	// A Restore to an index at or below after does not end the wait.
	Wait(ctx context.Context, after uint64) (uint64, error)
	// Snapshot writes the whole state; Restore replaces the whole state with
	// one written by Snapshot. Raft compacts its log with them.
	Snapshot(w io.Writer) error
	Restore(r io.Reader) error
	Close() error
}

// Journal is what a Store that remembers its recent writes offers besides
// (DB, and raftstore's Store over it): readers that keep the records of a
// kind (the controller's decoded caches) catch up on what changed instead
// of listing every entry again.
type Journal interface {
	// Since returns the entries of kind written after index after, as
	// they are now, in key order, and the keys deleted after it; and the
	// index that is as of. When it cannot tell, it returns every entry of
	// kind and all true.
	Since(kind string, after uint64) (changed []Entry, deleted []string, index uint64, all bool)
}

var _ Journal = (*DB)(nil)

// Lookup decodes the JSON record at kind/key and returns it with its
// revision; false when there is none or it does not decode.
func Lookup[T any](s Store, kind, key string) (T, uint64, bool) {
	var v T
	e, ok := s.Get(kind, key)
	if !ok || json.Unmarshal(e.Value, &v) != nil {
		var zero T
		return zero, 0, false
	}
	return v, e.Rev, true
}
