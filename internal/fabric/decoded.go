package fabric

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
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
//
// Over a store that keeps a journal (state.Journal), it also keeps the
// whole kind in key order as of the store index at: a list then walks
// only what was written since, not every key (with 20,000 instances, the
// store's list and this map were most of the cost of every reader).
type decoded[T any] struct {
	mu   sync.Mutex
	recs map[string]decodedRec[T]

	listed bool     // keys, sorted and revs hold the kind as of at
	at     uint64   // the store index they are as of
	keys   []string // in key order
	sorted []*T
	revs   []uint64
}

type decodedRec[T any] struct {
	rev uint64
	v   *T
}

// list returns every record of kind in key order, and each one's Rev.
func (d *decoded[T]) list(s state.Store, kind string) ([]*T, []uint64) {
	j, ok := s.(state.Journal)
	if !ok {
		return d.listAll(s.List(kind, ""))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.catchUp(j, kind)
	return slices.Clone(d.sorted), slices.Clone(d.revs)
}

// listPrefix returns the records of kind whose keys begin with prefix, in
// key order, as list does (a service's instances: a slice of the kind,
// found by its keys, not looked up one by one); over a store without a
// journal, of that prefix of the store.
func (d *decoded[T]) listPrefix(s state.Store, kind, prefix string) []*T {
	j, ok := s.(state.Journal)
	if !ok {
		return d.of(s.List(kind, prefix))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.catchUp(j, kind)
	lo, _ := slices.BinarySearch(d.keys, prefix)
	hi := lo + sort.Search(len(d.keys)-lo, func(i int) bool { return !strings.HasPrefix(d.keys[lo+i], prefix) })
	return slices.Clone(d.sorted[lo:hi])
}

// catchUp brings keys, sorted and revs to the store's index, from what
// was written since they were (d.at). d.mu is held.
func (d *decoded[T]) catchUp(j state.Journal, kind string) {
	changed, deleted, idx, all := j.Since(kind, d.at)
	switch {
	case all || !d.listed:
		d.keys, d.sorted, d.revs = nil, nil, nil
		if d.recs == nil {
			d.recs = map[string]decodedRec[T]{}
		}
		d.merge(changed, nil)
		if len(d.recs) > len(d.keys) { // keys deleted meanwhile
			recs := make(map[string]decodedRec[T], len(d.keys))
			for _, k := range d.keys {
				recs[k] = d.recs[k]
			}
			d.recs = recs
		}
	case len(deleted) == 0 && d.replace(changed):
	case len(changed)+len(deleted) > 0:
		d.merge(changed, deleted)
	}
	d.at, d.listed = idx, true
}

// replace folds written entries whose keys are all listed already into
// the lists in place (the callers have copies), and says whether they
// were; false changes nothing. d.mu is held.
func (d *decoded[T]) replace(changed []state.Entry) bool {
	at := make([]int, len(changed))
	for n, e := range changed {
		i, ok := slices.BinarySearch(d.keys, e.Key)
		if !ok {
			return false
		}
		at[n] = i
	}
	for n, e := range changed {
		r, ok := d.decode(e)
		if !ok {
			return false // merge drops it
		}
		d.recs[e.Key] = r
		d.sorted[at[n]], d.revs[at[n]] = r.v, e.Rev
	}
	return true
}

// merge folds into keys, sorted and revs the entries written (in key
// order) and the keys deleted since they were made. d.mu is held.
func (d *decoded[T]) merge(changed []state.Entry, deleted []string) {
	gone := make(map[string]bool, len(deleted))
	for _, k := range deleted {
		gone[k] = true
		delete(d.recs, k)
	}
	n := len(d.keys) + len(changed)
	keys, sorted, revs := make([]string, 0, n), make([]*T, 0, n), make([]uint64, 0, n)
	add := func(e state.Entry) {
		if r, ok := d.decode(e); ok {
			d.recs[e.Key] = r
			keys, sorted, revs = append(keys, e.Key), append(sorted, r.v), append(revs, e.Rev)
		} else {
			delete(d.recs, e.Key)
		}
	}
	i := 0
	for _, e := range changed {
		for ; i < len(d.keys) && d.keys[i] < e.Key; i++ {
			if !gone[d.keys[i]] {
				keys, sorted, revs = append(keys, d.keys[i]), append(sorted, d.sorted[i]), append(revs, d.revs[i])
			}
		}
		if i < len(d.keys) && d.keys[i] == e.Key {
			i++ // replaced by e
		}
		add(e)
	}
	for ; i < len(d.keys); i++ {
		if !gone[d.keys[i]] {
			keys, sorted, revs = append(keys, d.keys[i]), append(sorted, d.sorted[i]), append(revs, d.revs[i])
		}
	}
	d.keys, d.sorted, d.revs = keys, sorted, revs
}

// listAll is list over a store without a journal: entries are the whole
// kind.
func (d *decoded[T]) listAll(entries []state.Entry) ([]*T, []uint64) {
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
	if err := unmarshal(e.Value, v); err != nil {
		return decodedRec[T]{}, false
	}
	return decodedRec[T]{rev: e.Rev, v: v}, true
}

// unmarshal decodes a stored record and fills the fields made from the
// others (instanceRecord.derive).
func unmarshal(data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return err
	}
	if d, ok := v.(interface{ derive() }); ok {
		d.derive()
	}
	return nil
}

// clone is a copy of a shared (decoded) record that its holder may
// change: the parts a pass changes in place through pointers are copied;
// maps and slices are only ever replaced whole.
func (r *instanceRecord) clone() *instanceRecord {
	c := new(instanceRecord)
	r.cloneInto(c)
	return c
}

// cloneInto is clone into c, for a caller that allocates many at once.
func (r *instanceRecord) cloneInto(c *instanceRecord) {
	*c = *r
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
}
