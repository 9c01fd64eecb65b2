package table

import (
	"bytes"

	"github.com/google/btree"
)

// overlay holds entity writes that are in the log but not yet checkpointed
// into bbolt, one ordered tree per table so that range queries can merge
// it with bbolt's cursor.
type overlay struct {
	tables map[string]*btree.BTreeG[item]
	bytes  int
}

// item is the newest version of one key: val nil means deleted.
type item struct {
	key []byte
	val []byte
}

func itemLess(a, b item) bool { return bytes.Compare(a.key, b.key) < 0 }

func newOverlay() *overlay { return &overlay{tables: map[string]*btree.BTreeG[item]{}} }

func (o *overlay) empty() bool { return o == nil || len(o.tables) == 0 }

// get returns the newest version of key, and whether the overlay has one.
func (o *overlay) get(table string, key []byte) (item, bool) {
	if o == nil {
		return item{}, false
	}
	t := o.tables[table]
	if t == nil {
		return item{}, false
	}
	return t.Get(item{key: key})
}

func (o *overlay) set(c change) {
	t := o.tables[c.table]
	if t == nil {
		t = btree.NewG(16, itemLess)
		o.tables[c.table] = t
	}
	t.ReplaceOrInsert(item{key: c.key, val: c.val})
	o.bytes += len(c.key) + len(c.val)
}

// rangeOf returns the table's items with keys in [lo, hi) in order; hi nil
// means to the end.
func (o *overlay) rangeOf(table string, lo, hi []byte) []item {
	if o == nil || o.tables[table] == nil {
		return nil
	}
	var out []item
	visit := func(it item) bool {
		out = append(out, it)
		return true
	}
	if hi == nil {
		o.tables[table].AscendGreaterOrEqual(item{key: lo}, visit)
	} else {
		o.tables[table].AscendRange(item{key: lo}, item{key: hi}, visit)
	}
	return out
}

// mergeItems merges two ordered runs of items; on equal keys newer wins.
func mergeItems(newer, older []item) []item {
	if len(older) == 0 {
		return newer
	}
	if len(newer) == 0 {
		return older
	}
	out := make([]item, 0, len(newer)+len(older))
	for len(newer) > 0 && len(older) > 0 {
		switch c := bytes.Compare(newer[0].key, older[0].key); {
		case c < 0:
			out, newer = append(out, newer[0]), newer[1:]
		case c > 0:
			out, older = append(out, older[0]), older[1:]
		default:
			out, newer, older = append(out, newer[0]), newer[1:], older[1:]
		}
	}
	out = append(out, newer...)
	return append(out, older...)
}
