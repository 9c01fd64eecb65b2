package state

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src, _ := openTest(t)
	mustApply(t, src,
		put(KindNodes, "n1", `{"name":"n1","cpu":2}`),
		put(KindNodes, "n2", "{\n  \"indented\": true\n}"),
		put(KindServices, "hello", `{"roles":[]}`),
		put(KindPackages, "raw", "\x00\x01not json\n"),
		put(KindMeta, "null", `null`),
		put(KindMeta, "empty", ``),
		put(KindMeta, "spaced", " {\"a\": 1}\n"),
	)
	mustApply(t, src, put(KindNodes, "n1", `{"name":"n1","cpu":4}`), del(KindServices, "hello"))
	mustApply(t, src, put(KindInstances, "hello/web/0", `{"node":"n1"}`))

	var snap bytes.Buffer
	if err := src.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}

	// The destination has its own, different history; Restore must wipe it.
	dst, dstPath := openTest(t)
	for range 2 {
		mustApply(t, dst, put(KindServices, "other", `{}`), put(KindNodes, "zz", `1`))
	}
	// The index is read here, not in the goroutine: one that ran only
	// after the Restore would wait past the restored index, for good (it
	// hung make test on a loaded machine).
	waited, before := make(chan uint64), dst.Index()
	go func() {
		idx, _ := dst.Wait(context.Background(), before)
		waited <- idx
	}()
	if err := dst.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	<-waited // a restore wakes waiters

	kinds := []string{KindNodes, KindServices, KindInstances, KindPackages, KindMeta}
	compare := func(t *testing.T, got *DB) {
		t.Helper()
		for _, k := range kinds {
			if diff := cmp.Diff(src.List(k, ""), got.List(k, "")); diff != "" {
				t.Errorf("kind %s (-src +restored):\n%s", k, diff)
			}
		}
		if got.Index() != src.Index() {
			t.Errorf("Index = %d, want %d", got.Index(), src.Index())
		}
	}
	compare(t, dst)

	// The restore is on disk too, and new batches continue from its index.
	dst.Close()
	re, err := Open(dstPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	compare(t, re)
	if idx := mustApply(t, re, put(KindNodes, "n3", `{}`)); idx != src.Index()+1 {
		t.Errorf("next index = %d, want %d", idx, src.Index()+1)
	}
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	src, _ := openTest(t)
	mustApply(t, src, put(KindNodes, "a", `1`), put(KindNodes, "b", `2`))
	var snap bytes.Buffer
	if err := src.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	full := snap.String()
	lines := strings.SplitAfter(full, "\n")

	tests := []struct {
		name   string
		stream string
	}{
		{"empty", ""},
		{"not json", "hello\n"},
		{"wrong format", `{"format":"other","version":1,"index":1}` + "\n"},
		{"truncated before trailer", strings.Join(lines[:len(lines)-2], "")},
		{"cut mid-line", full[:len(full)-10]},
		{"count mismatch", strings.Join(lines[:2], "") + `{"end":true,"count":2}` + "\n"},
		{"entry without key", lines[0] + `{"kind":"nodes","rev":1,"value":1}` + "\n" + `{"end":true,"count":1}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst, _ := openTest(t)
			mustApply(t, dst, put(KindNodes, "keep", `1`))
			before := dst.List(KindNodes, "")
			err := dst.Restore(strings.NewReader(tt.stream))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("Restore = %v, want ErrBadSnapshot", err)
			}
			if diff := cmp.Diff(before, dst.List(KindNodes, "")); diff != "" {
				t.Errorf("a refused restore changed the store:\n%s", diff)
			}
		})
	}
}

func TestSnapshotIsDeterministic(t *testing.T) {
	var outs [2]string
	for i := range outs {
		db, err := Open(filepath.Join(t.TempDir(), "s.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		mustApply(t, db, put(KindServices, "b", `1`), put(KindNodes, "z", `2`), put(KindNodes, "a", `3`))
		var buf bytes.Buffer
		if err := db.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		db.Close()
		outs[i] = buf.String()
	}
	if outs[0] != outs[1] {
		t.Fatalf("snapshots differ:\n%s\n%s", outs[0], outs[1])
	}
	want := `{"format":"weft-state","version":1,"index":1}
{"kind":"nodes","key":"a","rev":1,"value":3}
{"kind":"nodes","key":"z","rev":1,"value":2}
{"kind":"services","key":"b","rev":1,"value":1}
{"end":true,"count":3}
`
	if diff := cmp.Diff(want, outs[0]); diff != "" {
		t.Errorf("snapshot format (-want +got):\n%s", diff)
	}
}
