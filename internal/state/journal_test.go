package state

import (
	"bytes"
	"slices"
	"testing"
)

// keysOf is the keys of entries, in order.
func keysOf(entries []Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Key)
	}
	return out
}

// TestSinceTellsWhatChanged: Since answers the entries written and the
// keys deleted after an index, as they are now and in key order; and
// every entry (all) when it cannot tell: from before the store was opened,
// from before a Restore, or further back than its journal reaches.
func TestSinceTellsWhatChanged(t *testing.T) {
	db, path := openTest(t)
	i1 := mustApply(t, db, put(KindNodes, "c", `1`), put(KindNodes, "a", `1`), put(KindNodes, "b", `1`))
	i2 := mustApply(t, db, del(KindNodes, "b"), put(KindNodes, "c", `2`))
	i3 := mustApply(t, db, put(KindNodes, "d", `1`), put(KindMeta, "m", `1`))

	changed, deleted, idx, all := db.Since(KindNodes, i1)
	if all || idx != i3 || !slices.Equal(keysOf(changed), []string{"c", "d"}) || !slices.Equal(deleted, []string{"b"}) {
		t.Fatalf("Since(%d) = %v deleted %v at %d all %v; want c, d, deleted b, at %d", i1, keysOf(changed), deleted, idx, all, i3)
	}
	if string(changed[0].Value) != "2" || changed[0].Rev != i2 {
		t.Errorf("c = %s at %d, want 2 at %d", changed[0].Value, changed[0].Rev, i2)
	}
	if changed, deleted, _, all := db.Since(KindNodes, i3); all || len(changed)+len(deleted) != 0 {
		t.Errorf("Since(the index) = %v, %v, all %v; want nothing", keysOf(changed), deleted, all)
	}
	if changed, _, _, all := db.Since(KindServices, 0); all || len(changed) != 0 {
		t.Errorf("Since of a kind never written = %v, all %v; want nothing", keysOf(changed), all)
	}

	// Written more than twice as often as it has keys, the journal drops
	// its older half: a reader from before that lists everything.
	for range 1100 {
		mustApply(t, db, put(KindNodes, "a", `3`))
	}
	if changed, _, _, all := db.Since(KindNodes, i3); !all || !slices.Equal(keysOf(changed), []string{"a", "c", "d"}) {
		t.Errorf("Since from before the journal = %v, all %v; want every entry, all", keysOf(changed), all)
	}

	var snap bytes.Buffer
	if err := db.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	before := db.Index()
	if err := db.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if _, _, _, all := db.Since(KindNodes, before); !all {
		t.Error("Since from before a Restore did not list everything")
	}
	db.Close()

	db2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if changed, _, _, all := db2.Since(KindNodes, i2); !all || len(changed) != 3 {
		t.Errorf("Since from before the store was opened = %v, all %v; want every entry, all", keysOf(changed), all)
	}
	at := db2.Index()
	i4 := mustApply(t, db2, put(KindNodes, "e", `1`))
	if changed, _, idx, all := db2.Since(KindNodes, at); all || idx != i4 || !slices.Equal(keysOf(changed), []string{"e"}) {
		t.Errorf("Since(%d) after reopening = %v at %d, all %v; want e at %d", at, keysOf(changed), idx, all, i4)
	}
}
