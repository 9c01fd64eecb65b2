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
	// journal lists the keys written (put or deleted) in index order,
	// complete for the writes after since (Since).
	journal []written
	since   uint64
}

// written is one entry of a table's journal.
type written struct {
	key   string
	index uint64
}

// note adds a write at index to the journal, dropping its older half once
// it holds twice the table's keys: a reader that far behind lists the
// whole kind instead.
func (t *table) note(key string, index uint64) {
	t.journal = append(t.journal, written{key, index})
	if len(t.journal) > 2*len(t.entries)+1024 {
		h := len(t.journal) / 2
		t.since = t.journal[h-1].index
		t.journal = append([]written(nil), t.journal[h:]...)
	}
}

// changedSince is the entries written after index after, in key order,
// and the keys deleted after it; false when the journal does not reach
// back that far.
func (t *table) changedSince(after uint64) ([]Entry, []string, bool) {
	if after < t.since {
		return nil, nil, false
	}
	i := sort.Search(len(t.journal), func(i int) bool { return t.journal[i].index > after })
	seen := map[string]bool{}
	var keys []string
	for _, w := range t.journal[i:] {
		if !seen[w.key] {
			seen[w.key] = true
			keys = append(keys, w.key)
		}
	}
	sort.Strings(keys)
	var changed []Entry
	var deleted []string
	for _, k := range keys {
		if e, ok := t.entries[k]; ok {
			changed = append(changed, e)
		} else {
			deleted = append(deleted, k)
		}
	}
	return changed, deleted, true
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
	// base: the journals (Since) tell nothing of what came before it:
	// the index the view was loaded at, or past every index before a
	// Restore.
	base uint64
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
	t.note(e.Key, e.Rev)
}

// delete deletes kind/key in the batch at index.
func (v *view) delete(kind, key string, index uint64) {
	if t, ok := v.tables[kind]; ok {
		t.delete(key)
		t.note(key, index)
	}
}

// loaded marks the view as read whole at its index (a file, a snapshot):
// the journals start there.
func (v *view) loaded() {
	v.base = v.index
	for _, t := range v.tables {
		t.journal = nil
	}
}

// since is Since's answer from the view.
func (v *view) since(kind string, after uint64) ([]Entry, []string, bool) {
	if after < v.base || after > v.index {
		return nil, nil, false
	}
	t, ok := v.tables[kind]
	if !ok {
		return nil, nil, true
	}
	return t.changedSince(after)
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
