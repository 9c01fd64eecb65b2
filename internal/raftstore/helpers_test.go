package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/weftcloud/weft/internal/state"
)

// testLogger discards logs unless WEFT_RAFT_LOG is set (then it writes
// everything at debug level to stderr, prefixed by node).
func testLogger() *slog.Logger {
	if os.Getenv("WEFT_RAFT_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testNode is one server of a test cluster: its config (kept to restart it
// on the same port and directory) and the running store, nil when stopped.
type testNode struct {
	t   testing.TB
	cfg Config
	s   *Store
}

func newNode(t testing.TB, dir, id string, mutate func(*Config)) *testNode {
	t.Helper()
	cfg := Config{
		NodeID:   id,
		BindAddr: "127.0.0.1:0",
		API:      "http://api-" + id + ".test",
		DataDir:  filepath.Join(dir, id),
		Logger:   testLogger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	n := &testNode{t: t, cfg: cfg}
	n.start()
	t.Cleanup(n.stop)
	return n
}

// start opens the store; after the first start it binds the same port.
func (n *testNode) start() {
	n.t.Helper()
	s, err := Open(n.cfg)
	if err != nil {
		n.t.Fatalf("open %s: %v", n.cfg.NodeID, err)
	}
	n.s = s
	n.cfg.BindAddr = string(s.trans.LocalAddr())
}

func (n *testNode) addr() string { return n.cfg.BindAddr }

// stop closes the store gracefully (a leader hands over first).
func (n *testNode) stop() {
	if n.s != nil {
		n.s.Close()
		n.s = nil
	}
}

// crash stops the store without a leadership transfer: to the others it
// looks like the process died.
func (n *testNode) crash() {
	if n.s != nil {
		n.s.shutdown(false)
		n.s = nil
	}
}

// newCluster starts n servers: the first bootstraps, the others are joined
// through the leader, as a real deployment grows from one server.
func newCluster(t testing.TB, size int, mutate func(*Config)) []*testNode {
	t.Helper()
	dir := t.TempDir()
	nodes := []*testNode{newNode(t, dir, "n1", func(c *Config) {
		c.Bootstrap = true
		if mutate != nil {
			mutate(c)
		}
	})}
	waitLeader(t, nodes)
	for i := 2; i <= size; i++ {
		n := newNode(t, dir, fmt.Sprintf("n%d", i), mutate)
		nodes = append(nodes, n)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := waitLeader(t, nodes).s.Join(ctx, n.cfg.NodeID, n.addr())
		cancel()
		if err != nil {
			t.Fatalf("join %s: %v", n.cfg.NodeID, err)
		}
	}
	waitLeader(t, nodes)
	return nodes
}

// waitLeader waits until one running node is leader and established (its
// LeaderCh has said true), and returns it.
func waitLeader(t testing.TB, nodes []*testNode) *testNode {
	t.Helper()
	var leader *testNode
	eventually(t, 10*time.Second, "a ready leader", func() bool {
		for _, n := range nodes {
			if n.s != nil && n.s.IsLeader() && n.s.readyTerm.Load() == n.s.raft.CurrentTerm() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

func followers(nodes []*testNode, leader *testNode) []*testNode {
	var out []*testNode
	for _, n := range nodes {
		if n != leader && n.s != nil {
			out = append(out, n)
		}
	}
	return out
}

// eventually polls cond: cluster timing is real (heartbeats, elections),
// so there is no event to wait on that would not itself be a poll.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitIndex waits until s has applied index.
func waitIndex(t testing.TB, s *Store, index uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Wait(ctx, index-1); err != nil {
		t.Fatalf("wait for index %d (at %d): %v", index, s.Index(), err)
	}
}

func put(kind, key, value string) state.Op {
	return state.Op{Kind: kind, Key: key, Value: []byte(value)}
}
func del(kind, key string) state.Op { return state.Op{Kind: kind, Key: key, Delete: true} }
func check(kind, key string, rev uint64) state.Op {
	return state.Op{Kind: kind, Key: key, Check: true, Rev: rev}
}

func mustApply(t testing.TB, s *Store, ops ...state.Op) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	idx, err := s.Apply(ctx, ops)
	if err != nil {
		t.Fatalf("apply %v: %v", ops, err)
	}
	return idx
}

// applyAnywhere applies on whichever store is leader, retrying while there
// is none (an election) or the request raced a change of leader.
func applyAnywhere(ctx context.Context, stores []*Store, ops []state.Op) (uint64, error) {
	for {
		for _, s := range stores {
			if !s.IsLeader() {
				continue
			}
			idx, err := s.Apply(ctx, ops)
			var nl ErrNotLeader
			if err == nil || !errors.As(err, &nl) {
				return idx, err
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// snapshotNow makes s take a Raft snapshot and compact its log.
func snapshotNow(t testing.TB, s *Store) {
	t.Helper()
	if err := s.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		t.Fatalf("snapshot: %v", err)
	}
}
