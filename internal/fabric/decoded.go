package fabric

import (
	"encoding/json"
	"sync"

	"github.com/weftcloud/weft/internal/state"
)

// Every reader of the whole state (a reconcile pass, the nodes'
// assignments) used to decode every record each time: with 20,000
// instances that is most of a pass, and a pass runs on every write. The
// controller keeps the records decoded instead, and decodes again only
// those written since (their Rev moved).

// decoded keeps the records of one kind decoded, by key, as of the
// revision they were decoded at, so that listing the kind again decodes
// only what was written since. The records it returns are shared by every
// caller: read them, never change them.
type decoded[T any] struct {
	mu   sync.Mutex
	recs map[string]decodedRec[T]
}

type decodedRec[T any] struct {
	rev uint64
	v   *T
}

// list returns every record of kind in key order, and each one's Rev.
func (d *decoded[T]) list(s state.Store, kind string) ([]*T, []uint64) {
	entries := s.List(kind, "")
	d.mu.Lock()
	defer d.mu.Unlock()
	next := make(map[string]decodedRec[T], len(entries))
	out := make([]*T, 0, len(entries))
	revs := make([]uint64, 0, len(entries))
	for _, e := range entries {
		r, ok := d.decode(e)
		if !ok {
			continue
		}
		next[e.Key] = r
		out = append(out, r.v)
		revs = append(revs, e.Rev)
	}
	d.recs = next
	return out, revs
}

// of returns the records of entries, a part of the kind (a prefix, a
// page), decoding only those written since they were last decoded. The
// records of other keys stay cached until the next list.
func (d *decoded[T]) of(entries []state.Entry) []*T {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.recs == nil {
		d.recs = map[string]decodedRec[T]{}
	}
	out := make([]*T, 0, len(entries))
	for _, e := range entries {
		if r, ok := d.decode(e); ok {
			d.recs[e.Key] = r
			out = append(out, r.v)
		}
	}
	return out
}

// get returns the record at kind/key.
func (d *decoded[T]) get(s state.Store, kind, key string) (*T, bool) {
	e, ok := s.Get(kind, key)
	if !ok {
		return nil, false
	}
	recs := d.of([]state.Entry{e})
	if len(recs) == 0 {
		return nil, false
	}
	return recs[0], true
}

// decode is e's record: the cached one if e was not written since, else
// e's value decoded. d.mu is held.
func (d *decoded[T]) decode(e state.Entry) (decodedRec[T], bool) {
	if r, ok := d.recs[e.Key]; ok && r.rev == e.Rev {
		return r, true
	}
	v := new(T)
	if err := json.Unmarshal(e.Value, v); err != nil {
		return decodedRec[T]{}, false
	}
	return decodedRec[T]{rev: e.Rev, v: v}, true
}

// clone is a copy of a shared (decoded) record that its holder may
// change: the parts a pass changes in place through pointers are copied;
// maps and slices are only ever replaced whole.
func (r *instanceRecord) clone() *instanceRecord {
	c := *r
	if r.Migration != nil {
		m := *r.Migration
		c.Migration = &m
	}
	if r.LastMigration != nil {
		m := *r.LastMigration
		c.LastMigration = &m
	}
	if r.Scheduled != nil {
		ev := *r.Scheduled
		c.Scheduled = &ev
	}
	return &c
}
