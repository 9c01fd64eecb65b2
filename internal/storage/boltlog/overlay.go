package boltlog

import (
	"bytes"

	"github.com/google/btree"
)

// overlay holds writes that are logged but not yet checkpointed into
// bbolt, one ordered tree per bucket so that cursors can merge it with
// bbolt's. A published overlay is immutable: readers use it without a
// lock, and the writer makes the next one with with.
type overlay struct {
	buckets map[string]*btree.BTreeG[item]
	deletes int // deleted keys it holds, which cursors over bbolt skip one by one
}

// item is the newest version of one key: val nil means deleted.
type item struct {
	key []byte
	val []byte
}

func itemLess(a, b item) bool { return bytes.Compare(a.key, b.key) < 0 }

func newOverlay() *overlay { return &overlay{buckets: map[string]*btree.BTreeG[item]{}} }

func (o *overlay) empty() bool { return o == nil || len(o.buckets) == 0 }

// get returns the newest version of key, and whether the overlay has one.
func (o *overlay) get(bucket string, key []byte) (item, bool) {
	if o == nil || o.buckets[bucket] == nil {
		return item{}, false
	}
	return o.buckets[bucket].Get(item{key: key})
}

// first returns the bucket's first item at or after from (after, when
// inclusive is false).
func (o *overlay) first(bucket string, from []byte, inclusive bool) (item, bool) {
	if o == nil || o.buckets[bucket] == nil {
		return item{}, false
	}
	var found item
	ok := false
	o.buckets[bucket].AscendGreaterOrEqual(item{key: from}, func(it item) bool {
		if !inclusive && bytes.Equal(it.key, from) {
			return true
		}
		found, ok = it, true
		return false
	})
	return found, ok
}

// last returns the bucket's last item at or before end (before, when
// inclusive is false); end nil means the end of the bucket.
func (o *overlay) last(bucket string, end []byte, inclusive bool) (item, bool) {
	if o == nil || o.buckets[bucket] == nil {
		return item{}, false
	}
	t := o.buckets[bucket]
	if end == nil {
		return t.Max()
	}
	var found item
	ok := false
	t.DescendLessOrEqual(item{key: end}, func(it item) bool {
		if !inclusive && bytes.Equal(it.key, end) {
			return true
		}
		found, ok = it, true
		return false
	})
	return found, ok
}

// set changes an overlay in place: only for one not yet published.
func (o *overlay) set(c change) {
	t := o.buckets[c.bucket]
	if t == nil {
		t = btree.NewG(16, itemLess)
		o.buckets[c.bucket] = t
	}
	t.ReplaceOrInsert(item{key: c.key, val: c.val})
	if c.val == nil {
		o.deletes++
	}
}

// with returns a new overlay holding o's versions and then changes,
// leaving o as it was: trees it changes are cloned (lazily, copy on
// write), the others shared.
func (o *overlay) with(changes []change) *overlay {
	n := &overlay{buckets: make(map[string]*btree.BTreeG[item], len(o.buckets)+1), deletes: o.deletes}
	for id, t := range o.buckets {
		n.buckets[id] = t
	}
	cloned := map[string]bool{}
	for _, c := range changes {
		if t := n.buckets[c.bucket]; t != nil && !cloned[c.bucket] {
			n.buckets[c.bucket] = t.Clone()
		}
		cloned[c.bucket] = true
		n.set(c)
	}
	return n
}

// changes lists the overlay's versions, bucket by bucket in key order.
func (o *overlay) changes() []change {
	var out []change
	for id, t := range o.buckets {
		t.Ascend(func(it item) bool {
			out = append(out, change{bucket: id, key: it.key, val: it.val})
			return true
		})
	}
	return out
}
