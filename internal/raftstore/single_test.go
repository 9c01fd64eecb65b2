package raftstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/weftcloud/weft/internal/state"
)

// TestSingleServerSemantics runs, on a one-member cluster, the batch
// semantics state.DB has: indexes are Raft's, so the test compares Revs
// with what Apply returned rather than with fixed numbers.
func TestSingleServerSemantics(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	s := n.s
	k := state.KindNodes

	type step struct {
		name    string
		ops     func(idx map[string]uint64) []state.Op // idx: index of earlier named steps
		wantErr error
	}
	steps := []step{
		{name: "create a", ops: func(map[string]uint64) []state.Op {
			return []state.Op{check(k, "a", 0), put(k, "a", `{"v":1}`)}
		}},
		{name: "create a again", wantErr: state.ErrConflict, ops: func(map[string]uint64) []state.Op {
			return []state.Op{check(k, "a", 0), put(k, "a", `{"v":9}`)}
		}},
		{name: "update a at its rev", ops: func(idx map[string]uint64) []state.Op {
			return []state.Op{check(k, "a", idx["create a"]), put(k, "a", `{"v":2}`), put(k, "b", `"b"`)}
		}},
		{name: "stale update", wantErr: state.ErrConflict, ops: func(idx map[string]uint64) []state.Op {
			return []state.Op{check(k, "a", idx["create a"]), put(k, "a", `{"v":3}`)}
		}},
		{name: "empty key", wantErr: state.ErrInvalid, ops: func(map[string]uint64) []state.Op {
			return []state.Op{{Kind: k}}
		}},
		{name: "delete b and an absent key", ops: func(map[string]uint64) []state.Op {
			return []state.Op{del(k, "b"), del(k, "zz")}
		}},
		{name: "check deleted b is absent", ops: func(map[string]uint64) []state.Op {
			return []state.Op{check(k, "b", 0), put(k, "c", `3`)}
		}},
	}
	idx := map[string]uint64{}
	var last uint64
	for _, st := range steps {
		got, err := s.Apply(context.Background(), st.ops(idx))
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got <= last || s.Index() < got {
			t.Fatalf("%s: index %d after %d, store at %d", st.name, got, last, s.Index())
		}
		idx[st.name], last = got, got
	}
	want := []state.Entry{
		{Kind: k, Key: "a", Value: []byte(`{"v":2}`), Rev: idx["update a at its rev"]},
		{Kind: k, Key: "c", Value: []byte(`3`), Rev: idx["check deleted b is absent"]},
	}
	if diff := cmp.Diff(want, s.List(k, "")); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if e, ok := s.Get(k, "a"); !ok || string(e.Value) != `{"v":2}` {
		t.Errorf("Get a = %+v, %v", e, ok)
	}
	if _, ok := s.Get(k, "b"); ok {
		t.Error("b survived its delete")
	}
}

func TestSingleServerWait(t *testing.T) {
	s := newCluster(t, 1, nil)[0].s
	before := s.Index()

	got := make(chan uint64, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		idx, _ := s.Wait(ctx, before)
		got <- idx
	}()
	idx := mustApply(t, s, put(state.KindMeta, "x", `1`))
	if w := <-got; w <= before || w > idx {
		t.Errorf("Wait returned %d, want in (%d, %d]", w, before, idx)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(ctx, s.Index()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with nothing to wait for: %v, want DeadlineExceeded", err)
	}
}

// TestSingleServerRestart: every acknowledged write survives a restart,
// with and without snapshots, and the server resumes from its database
// rather than rebuilding it; a lost state.db is rebuilt from the snapshot
// and the log.
func TestSingleServerRestart(t *testing.T) {
	tests := []struct {
		name        string
		snapshot    bool // take a snapshot before the restart
		loseStateDB bool // delete state.db while stopped
	}{
		{name: "log only"},
		{name: "after a snapshot", snapshot: true},
		{name: "state.db lost, rebuilt from snapshot and log", snapshot: true, loseStateDB: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newCluster(t, 1, func(c *Config) { c.TrailingLogs = 10 })[0]
			var wg sync.WaitGroup
			var mu sync.Mutex
			acked := map[string]uint64{}
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 25 {
						key := fmt.Sprintf("w%d-%02d", w, i)
						idx, err := n.s.Apply(context.Background(), []state.Op{put(state.KindInstances, key, `"x"`)})
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						acked[key] = idx
						mu.Unlock()
						if tt.snapshot && w == 0 && i == 20 {
							snapshotNow(t, n.s)
						}
					}
				}()
			}
			wg.Wait()
			// A few writes after the snapshot, so the restart has log to skip.
			mustApply(t, n.s, put(state.KindMeta, "after", `1`))
			index := n.s.Index()

			n.stop()
			if tt.loseStateDB {
				if err := os.Remove(filepath.Join(n.cfg.DataDir, "state.db")); err != nil {
					t.Fatal(err)
				}
			}
			n.start()
			if !tt.loseStateDB && n.s.Index() != index {
				t.Errorf("index right after restart %d, want %d (the database, not a replay)", n.s.Index(), index)
			}
			waitLeader(t, []*testNode{n})
			if n.s.Index() < index {
				t.Fatalf("index %d after restart, want >= %d", n.s.Index(), index)
			}
			for key, idx := range acked {
				if e, ok := n.s.Get(state.KindInstances, key); !ok || e.Rev != idx {
					t.Errorf("%s: got %+v %v, want rev %d", key, e, ok, idx)
				}
			}
			if got := mustApply(t, n.s, put(state.KindMeta, "later", `1`)); got <= index {
				t.Errorf("write after restart got index %d, not above %d", got, index)
			}
		})
	}
}

func TestClosedStore(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	s := n.s
	ch := s.LeaderCh()
	if v := <-ch; !v {
		t.Fatal("a one-member leader's LeaderCh did not start with true")
	}
	n.stop()
	if _, err := s.Apply(context.Background(), []state.Op{put("k", "a", `1`)}); !errors.Is(err, state.ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, state.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	for range ch { // drained and closed by Close
	}
}

// TestAdoptSingleServerState: a server upgraded from the plain state.DB
// keeps its data and indexes when it bootstraps a one-member cluster on
// the same directory; a server that would join instead refuses to start.
func TestAdoptSingleServerState(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"n1", "n2"} {
		if err := os.MkdirAll(filepath.Join(dir, id), 0o700); err != nil {
			t.Fatal(err)
		}
		db, err := state.Open(filepath.Join(dir, id, "state.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 30 {
			if _, err := db.Apply(context.Background(), []state.Op{put(state.KindServices, fmt.Sprintf("s%02d", i), `{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
	}
	want := 30 // one batch per index in the old store

	if _, err := Open(Config{NodeID: "n2", BindAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "n2")}); err == nil {
		t.Fatal("a non-bootstrapping server adopted an existing state.db")
	}

	n := newNode(t, dir, "n1", func(c *Config) { c.Bootstrap = true })
	if got := len(n.s.List(state.KindServices, "")); got != want {
		t.Fatalf("adopted %d services, want %d", got, want)
	}
	waitLeader(t, []*testNode{n})
	if idx := mustApply(t, n.s, put(state.KindMeta, "new", `1`)); idx <= uint64(want) {
		t.Errorf("first write after adoption at index %d, not above the old store's %d", idx, want)
	}
	n.stop()
	n.start()
	waitLeader(t, []*testNode{n})
	if got := len(n.s.List(state.KindServices, "")); got != want {
		t.Errorf("after restart: %d services, want %d", got, want)
	}
	if _, ok := n.s.Get(state.KindMeta, "new"); !ok {
		t.Error("the write after adoption was lost over a restart")
	}
}

// TestReplicationIsNotPipelined: every transport the store makes (TCP,
// TLS's stream and weft dev's local one alike share the config) refuses
// hashicorp/raft's pipelined replication, which can wedge a follower and
// the leader's shutdown (see Open).
func TestReplicationIsNotPipelined(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"tcp":   nil,
		"local": func(c *Config) { c.Local, c.Bootstrap = true, true },
	} {
		n := newNode(t, t.TempDir(), "n1", mutate)
		if _, err := n.s.trans.AppendEntriesPipeline("n2", "127.0.0.1:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
			t.Errorf("%s transport: AppendEntriesPipeline = %v, want %v", name, err, raft.ErrPipelineReplicationNotSupported)
		}
	}
}
