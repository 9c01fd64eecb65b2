package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func put(kind, key, value string) Op { return Op{Kind: kind, Key: key, Value: []byte(value)} }
func del(kind, key string) Op        { return Op{Kind: kind, Key: key, Delete: true} }
func check(kind, key string, rev uint64) Op {
	return Op{Kind: kind, Key: key, Check: true, Rev: rev}
}

func mustApply(t testing.TB, db *DB, ops ...Op) uint64 {
	t.Helper()
	idx, err := db.Apply(context.Background(), ops)
	if err != nil {
		t.Fatalf("apply %v: %v", ops, err)
	}
	return idx
}

func TestApplySemantics(t *testing.T) {
	type step struct {
		ops     []Op
		wantErr error
		wantIdx uint64 // when wantErr is nil
	}
	tests := []struct {
		name  string
		steps []step
		want  []Entry // KindNodes afterwards
		index uint64
	}{
		{
			name:  "put then get",
			steps: []step{{ops: []Op{put(KindNodes, "a", `{"x":1}`)}, wantIdx: 1}},
			want:  []Entry{{Kind: KindNodes, Key: "a", Value: []byte(`{"x":1}`), Rev: 1}},
			index: 1,
		},
		{
			name: "overwrite moves rev",
			steps: []step{
				{ops: []Op{put(KindNodes, "a", `1`), put(KindNodes, "b", `2`)}, wantIdx: 1},
				{ops: []Op{put(KindNodes, "a", `3`)}, wantIdx: 2},
			},
			want: []Entry{
				{Kind: KindNodes, Key: "a", Value: []byte(`3`), Rev: 2},
				{Kind: KindNodes, Key: "b", Value: []byte(`2`), Rev: 1},
			},
			index: 2,
		},
		{
			name: "delete, and delete of absent key",
			steps: []step{
				{ops: []Op{put(KindNodes, "a", `1`)}, wantIdx: 1},
				{ops: []Op{del(KindNodes, "a"), del(KindNodes, "zz")}, wantIdx: 2},
			},
			index: 2,
		},
		{
			name: "create-only check succeeds then conflicts",
			steps: []step{
				{ops: []Op{check(KindNodes, "a", 0), put(KindNodes, "a", `1`)}, wantIdx: 1},
				{ops: []Op{check(KindNodes, "a", 0), put(KindNodes, "a", `2`)}, wantErr: ErrConflict},
			},
			want:  []Entry{{Kind: KindNodes, Key: "a", Value: []byte(`1`), Rev: 1}},
			index: 1,
		},
		{
			name: "compare-and-swap on rev",
			steps: []step{
				{ops: []Op{put(KindNodes, "a", `1`)}, wantIdx: 1},
				{ops: []Op{check(KindNodes, "a", 1), put(KindNodes, "a", `2`)}, wantIdx: 2},
				{ops: []Op{check(KindNodes, "a", 1), put(KindNodes, "a", `3`)}, wantErr: ErrConflict},
			},
			want:  []Entry{{Kind: KindNodes, Key: "a", Value: []byte(`2`), Rev: 2}},
			index: 2,
		},
		{
			name: "failed check applies nothing of the batch",
			steps: []step{
				{ops: []Op{put(KindNodes, "a", `1`), check(KindNodes, "b", 5), put(KindNodes, "c", `1`)}, wantErr: ErrConflict},
			},
			index: 0,
		},
		{
			name: "check of deleted key sees rev 0",
			steps: []step{
				{ops: []Op{put(KindNodes, "a", `1`)}, wantIdx: 1},
				{ops: []Op{del(KindNodes, "a")}, wantIdx: 2},
				{ops: []Op{check(KindNodes, "a", 0), put(KindNodes, "a", `x`)}, wantIdx: 3},
			},
			want:  []Entry{{Kind: KindNodes, Key: "a", Value: []byte(`x`), Rev: 3}},
			index: 3,
		},
		{
			name: "checks see the state before the batch",
			steps: []step{
				{ops: []Op{put(KindNodes, "a", `1`), check(KindNodes, "a", 0)}, wantIdx: 1},
			},
			want:  []Entry{{Kind: KindNodes, Key: "a", Value: []byte(`1`), Rev: 1}},
			index: 1,
		},
		{
			name:  "invalid op",
			steps: []step{{ops: []Op{put(KindNodes, "", `1`)}, wantErr: ErrInvalid}},
		},
		{
			name:  "empty batch still takes an index",
			steps: []step{{ops: nil, wantIdx: 1}},
			index: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			for i, s := range tt.steps {
				idx, err := db.Apply(context.Background(), s.ops)
				if !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
				}
				if err == nil && idx != s.wantIdx {
					t.Fatalf("step %d: index = %d, want %d", i, idx, s.wantIdx)
				}
			}
			if diff := cmp.Diff(tt.want, db.List(KindNodes, "")); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
			if got := db.Index(); got != tt.index {
				t.Errorf("Index = %d, want %d", got, tt.index)
			}
			for _, e := range tt.want {
				got, ok := db.Get(e.Kind, e.Key)
				if !ok || !cmp.Equal(got, e) {
					t.Errorf("Get(%s) = %v, %v; want %v", e.Key, got, ok, e)
				}
			}
		})
	}
}

func TestListPrefixAndOrder(t *testing.T) {
	db, _ := openTest(t)
	// Insert out of order, across kinds, to exercise the sorted key slice.
	for _, k := range []string{"svc/b/2", "svc/a/1", "svc/b/10", "svc/b/1", "svd/x", "sva", "svc/"} {
		mustApply(t, db, put(KindInstances, k, `{}`), put(KindServices, k, `{}`))
	}
	mustApply(t, db, del(KindInstances, "svc/b/10"))
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"sva", "svc/", "svc/a/1", "svc/b/1", "svc/b/2", "svd/x"}},
		{"svc/", []string{"svc/", "svc/a/1", "svc/b/1", "svc/b/2"}},
		{"svc/b/", []string{"svc/b/1", "svc/b/2"}},
		{"svc/b/1", []string{"svc/b/1"}},
		{"zzz", nil},
		{"a", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, e := range db.List(KindInstances, tt.prefix) {
			got = append(got, e.Key)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("List(%q) (-want +got):\n%s", tt.prefix, diff)
		}
	}
	if n := len(db.List(KindServices, "")); n != 7 {
		t.Errorf("services: %d entries, want 7", n)
	}
	if got := db.List("nosuchkind", ""); got != nil {
		t.Errorf("List of unknown kind = %v, want nil", got)
	}
}

func TestApplyCopiesValue(t *testing.T) {
	db, _ := openTest(t)
	buf := []byte(`"one"`)
	mustApply(t, db, Op{Kind: KindMeta, Key: "k", Value: buf})
	copy(buf, `"two"`)
	if e, _ := db.Get(KindMeta, "k"); string(e.Value) != `"one"` {
		t.Fatalf("stored value changed with the caller's buffer: %s", e.Value)
	}
}

func TestApplyCancelledContext(t *testing.T) {
	db, _ := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Apply(ctx, []Op{put(KindNodes, "a", `1`)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled", err)
	}
	if db.Index() != 0 {
		t.Fatalf("a cancelled Apply moved the index to %d", db.Index())
	}
}

func TestReopen(t *testing.T) {
	db, path := openTest(t)
	mustApply(t, db, put(KindNodes, "n1", `{"a":1}`), put(KindMeta, "m", `"v"`))
	mustApply(t, db, put(KindNodes, "n2", `{"a":2}`), del(KindMeta, "m"))
	wantNodes := db.List(KindNodes, "")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if diff := cmp.Diff(wantNodes, db2.List(KindNodes, "")); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
	if got := db2.List(KindMeta, ""); got != nil {
		t.Errorf("meta after reopen = %v, want nothing", got)
	}
	if db2.Index() != 2 {
		t.Errorf("Index after reopen = %d, want 2", db2.Index())
	}
}

func TestWait(t *testing.T) {
	db, _ := openTest(t)
	mustApply(t, db, put(KindNodes, "a", `1`))

	t.Run("already past", func(t *testing.T) {
		idx, err := db.Wait(context.Background(), 0)
		if err != nil || idx != 1 {
			t.Fatalf("Wait(0) = %d, %v; want 1, nil", idx, err)
		}
	})
	t.Run("wakes on apply", func(t *testing.T) {
		got := make(chan uint64)
		go func() {
			idx, _ := db.Wait(context.Background(), 1)
			got <- idx
		}()
		mustApply(t, db, put(KindNodes, "b", `2`))
		if idx := <-got; idx < 2 {
			t.Fatalf("Wait(1) = %d, want >= 2", idx)
		}
	})
	t.Run("honours ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error)
		go func() {
			_, err := db.Wait(ctx, 100)
			errc <- err
		}()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait err = %v, want context.Canceled", err)
		}
	})
	t.Run("conflict does not wake", func(t *testing.T) {
		db.mu.RLock()
		before := db.changed
		db.mu.RUnlock()
		if _, err := db.Apply(context.Background(), []Op{check(KindNodes, "a", 99)}); !errors.Is(err, ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		db.mu.RLock()
		after := db.changed
		db.mu.RUnlock()
		if before != after {
			t.Fatal("a refused batch woke waiters")
		}
	})
}

func TestClose(t *testing.T) {
	db, _ := openTest(t)
	mustApply(t, db, put(KindNodes, "a", `1`))
	errc := make(chan error)
	go func() {
		_, err := db.Wait(context.Background(), 5)
		errc <- err
	}()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("pending Wait = %v, want ErrClosed", err)
	}
	if _, err := db.Apply(context.Background(), []Op{put(KindNodes, "b", `1`)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
	if err := db.Snapshot(&bytes.Buffer{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after Close = %v, want ErrClosed", err)
	}
	if err := db.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, ok := db.Get(KindNodes, "a"); ok {
		t.Error("Get after Close found an entry")
	}
}

// TestConcurrentApply runs writers that compare-and-swap shared counters
// and readers that list, under -race: every successful increment must be
// counted exactly once and the index must equal the successful batches.
func TestConcurrentApply(t *testing.T) {
	db, path := openTest(t)
	const writers, rounds, counters = 8, 50, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	successes := 0
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				key := fmt.Sprintf("c%d", (w+i)%counters)
				for {
					e, _ := db.Get(KindMeta, key)
					n := len(e.Value)
					_, err := db.Apply(context.Background(), []Op{
						check(KindMeta, key, e.Rev),
						{Kind: KindMeta, Key: key, Value: bytes.Repeat([]byte("1"), n+1)},
					})
					if errors.Is(err, ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					successes++
					mu.Unlock()
					break
				}
			}
		}()
	}
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, e := range db.List(KindMeta, "c") {
				_ = len(e.Value)
			}
		}
	}()
	wg.Wait()
	close(stop)
	rwg.Wait()

	total := 0
	for _, e := range db.List(KindMeta, "c") {
		total += len(e.Value)
	}
	if total != writers*rounds || successes != writers*rounds {
		t.Fatalf("counted %d, succeeded %d, want %d", total, successes, writers*rounds)
	}
	if db.Index() != uint64(writers*rounds) {
		t.Fatalf("Index = %d, want %d", db.Index(), writers*rounds)
	}
	want := db.List(KindMeta, "")
	db.Close()
	db2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if diff := cmp.Diff(want, db2.List(KindMeta, "")); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
}

// TestListAfter: a page of a kind's keys under a prefix, after a key that
// may or may not exist, at most n; never a key outside the prefix.
func TestListAfter(t *testing.T) {
	db, _ := openTest(t)
	mustApply(t, db, put(KindServices, "a/1", "{}"), put(KindServices, "a/3", "{}"), put(KindServices, "a/5", "{}"), put(KindServices, "b/1", "{}"))
	keys := func(es []Entry) (out []string) {
		for _, e := range es {
			out = append(out, e.Key)
		}
		return out
	}
	for _, tc := range []struct {
		prefix, after string
		n             int
		want          []string
	}{
		{"a/", "", 2, []string{"a/1", "a/3"}},
		{"a/", "a/1", 5, []string{"a/3", "a/5"}},
		{"a/", "a/2", 1, []string{"a/3"}},
		{"a/", "a/5", 5, nil},
		{"", "a/5", 5, []string{"b/1"}},
		{"b/", "a/9", -1, []string{"b/1"}},
	} {
		if got := keys(db.ListAfter(KindServices, tc.prefix, tc.after, tc.n)); !slices.Equal(got, tc.want) {
			t.Errorf("ListAfter(%q, %q, %d) = %v, want %v", tc.prefix, tc.after, tc.n, got, tc.want)
		}
	}
}
