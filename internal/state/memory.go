package state

import (
	"sort"
	"strings"
)

// table is the in-memory copy of one kind. Keys are kept sorted beside the
// map so List is a binary search plus a walk, not a sort per call; inserting
// a new key shifts the slice, which for tens of thousands of keys is a short
// memmove and far cheaper than the fsync that precedes it.
type table struct {
	entries map[string]Entry
	keys    []string
}

func newTable() *table {
	return &table{entries: make(map[string]Entry)}
}

func (t *table) put(e Entry) {
	if _, ok := t.entries[e.Key]; !ok {
		i := sort.SearchStrings(t.keys, e.Key)
		t.keys = append(t.keys, "")
		copy(t.keys[i+1:], t.keys[i:])
		t.keys[i] = e.Key
	}
	t.entries[e.Key] = e
}

func (t *table) delete(key string) {
	if _, ok := t.entries[key]; !ok {
		return
	}
	delete(t.entries, key)
	i := sort.SearchStrings(t.keys, key)
	t.keys = append(t.keys[:i], t.keys[i+1:]...)
}

func (t *table) list(prefix string) []Entry { return t.listAfter(prefix, "", -1) }

// listAfter is list's entries whose keys come after after, at most n of
// them (all when n < 0).
func (t *table) listAfter(prefix, after string, n int) []Entry {
	// Keys with the prefix are contiguous from the first key >= prefix.
	lo := sort.SearchStrings(t.keys, max(prefix, after))
	if lo < len(t.keys) && after != "" && t.keys[lo] == after {
		lo++
	}
	rest := t.keys[lo:]
	end := sort.Search(len(rest), func(i int) bool { return !strings.HasPrefix(rest[i], prefix) })
	if n >= 0 {
		end = min(end, n)
	}
	if end == 0 {
		return nil
	}
	out := make([]Entry, end)
	for i, k := range rest[:end] {
		out[i] = t.entries[k]
	}
	return out
}

// view is the whole in-memory state: every kind and the index. Entry values
// are never modified in place once stored, so entries can be handed to
// readers and to Snapshot without copying the bytes.
type view struct {
	tables map[string]*table
	index  uint64
}

func newView() *view {
	return &view{tables: make(map[string]*table)}
}

func (v *view) get(kind, key string) (Entry, bool) {
	t, ok := v.tables[kind]
	if !ok {
		return Entry{}, false
	}
	e, ok := t.entries[key]
	return e, ok
}

func (v *view) put(e Entry) {
	t, ok := v.tables[e.Kind]
	if !ok {
		t = newTable()
		v.tables[e.Kind] = t
	}
	t.put(e)
}

func (v *view) delete(kind, key string) {
	if t, ok := v.tables[kind]; ok {
		t.delete(key)
	}
}

// kinds returns the kinds that hold entries, sorted, so snapshots are
// deterministic.
func (v *view) kinds() []string {
	out := make([]string, 0, len(v.tables))
	for k, t := range v.tables {
		if len(t.keys) > 0 {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
