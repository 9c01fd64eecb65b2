package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/state"
)

// TestClusterReplicates: writes on the leader reach every follower with
// the same index and Rev, and the follower's reads, leader queries and
// membership agree.
func TestClusterReplicates(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitLeader(t, nodes)

	var last uint64
	for i := range 20 {
		last = mustApply(t, leader.s, put(state.KindServices, fmt.Sprintf("svc-%02d", i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	want := leader.s.List(state.KindServices, "")
	for _, f := range followers(nodes, leader) {
		waitIndex(t, f.s, last)
		if diff := cmp.Diff(want, f.s.List(state.KindServices, "")); diff != "" {
			t.Errorf("%s differs from the leader (-leader +follower):\n%s", f.cfg.NodeID, diff)
		}
		if got := f.s.Leader(); got.ID != leader.cfg.NodeID || got.Addr != leader.addr() {
			t.Errorf("%s thinks the leader is %+v", f.cfg.NodeID, got)
		}
	}

	members, err := nodes[2].s.Members()
	if err != nil {
		t.Fatal(err)
	}
	var leaders []string
	for _, m := range members {
		if !m.Voter {
			t.Errorf("%s is not a voter", m.ID)
		}
		if m.Leader {
			leaders = append(leaders, m.ID)
		}
	}
	if len(members) != 3 || len(leaders) != 1 || leaders[0] != leader.cfg.NodeID {
		t.Errorf("members %+v", members)
	}
}

// TestFollowerRefusesWrites: a follower's Apply (and every leader-only
// call) returns ErrNotLeader naming the leader, its Raft and API address;
// nothing is written.
func TestFollowerRefusesWrites(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitLeader(t, nodes)
	f := followers(nodes, leader)[0].s
	// The leader's announcement is a replicated write: wait until it is here.
	eventually(t, 5*time.Second, "the leader's API address on the follower", func() bool {
		return f.Leader().API != ""
	})
	want := ErrNotLeader{Leader: leader.addr(), LeaderID: leader.cfg.NodeID, LeaderAPI: leader.cfg.API}

	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"Apply", func() error { _, err := f.Apply(ctx, []state.Op{put("k", "x", `1`)}); return err }},
		{"Consistent", func() error { return f.Consistent(ctx) }},
		{"Join", func() error { return f.Join(ctx, "n9", "127.0.0.1:1") }},
		{"RemovePeer", func() error { return f.RemovePeer(ctx, "n1") }},
		{"Restore", func() error { return f.Restore(bytes.NewReader(nil)) }},
	}
	for _, c := range calls {
		var nl ErrNotLeader
		if err := c.call(); !errors.As(err, &nl) || nl != want {
			t.Errorf("%s on a follower: %v, want %+v", c.name, err, want)
		}
	}
	if _, ok := f.Get("k", "x"); ok {
		t.Error("the refused write is visible")
	}
	if err := leader.s.Consistent(ctx); err != nil {
		t.Errorf("Consistent on the leader: %v", err)
	}
}

// TestLeaderCrashUnderWrites: the leader dies (no leadership transfer)
// while writers keep going; a new leader takes over within the failover
// budget, has every acknowledged write, and accepts new ones.
func TestLeaderCrashUnderWrites(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitLeader(t, nodes)

	var stores []*Store // the writers' own list: crash clears leader.s
	for _, n := range nodes {
		stores = append(stores, n.s)
	}
	var mu sync.Mutex
	acked := map[string]uint64{}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d-%05d", w, i)
				idx, err := applyAnywhere(ctx, stores, []state.Op{put(state.KindInstances, key, `"x"`)})
				if err != nil {
					continue // refused or outcome unknown: not acknowledged
				}
				mu.Lock()
				acked[key] = idx
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // writes in flight when the leader dies
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	crashed := time.Now()
	leader.crash()

	// The first write acknowledged after the crash is the end of failover.
	mu.Lock()
	n0 := len(acked)
	mu.Unlock()
	eventually(t, 5*time.Second, "a write after the crash", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > n0
	})
	failover := time.Since(crashed)
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("acknowledged %d writes before the crash, %d in all; failover %v", before, len(acked), failover)
	if before == 0 {
		t.Fatal("no writes before the crash")
	}

	next := waitLeader(t, nodes)
	if err := next.s.Consistent(context.Background()); err != nil {
		t.Fatal(err)
	}
	for key, idx := range acked {
		if e, ok := next.s.Get(state.KindInstances, key); !ok || e.Rev != idx {
			t.Errorf("acknowledged %s at %d: new leader has %+v %v", key, idx, e, ok)
		}
	}
	idx := mustApply(t, next.s, put(state.KindMeta, "after", `1`))
	for _, f := range followers(nodes, next) {
		waitIndex(t, f.s, idx)
	}
}

// TestRestartAfterCompaction: a follower that was down while the others
// compacted their logs past its position catches up from a snapshot the
// leader sends, then from the log.
func TestRestartAfterCompaction(t *testing.T) {
	nodes := newCluster(t, 3, func(c *Config) {
		c.TrailingLogs = 10
		c.SnapshotThreshold = 50
	})
	leader := waitLeader(t, nodes)
	lagger := followers(nodes, leader)[0]
	mustApply(t, leader.s, put(state.KindNodes, "before", `1`))
	waitIndex(t, lagger.s, leader.s.Index())
	lagger.stop()

	for i := range 200 {
		mustApply(t, leader.s, put(state.KindNodes, fmt.Sprintf("n%03d", i), `{}`), del(state.KindNodes, "before"))
	}
	for _, n := range followers(nodes, lagger) {
		snapshotNow(t, n.s)
	}
	first, err := leader.s.logs.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	lagger.start()
	if at := lagger.s.Index(); first <= at+1 {
		t.Fatalf("log starts at %d, the restarted follower is at %d: nothing was compacted past it", first, at)
	}
	last := mustApply(t, leader.s, put(state.KindNodes, "after", `1`))
	waitIndex(t, lagger.s, last)
	if diff := cmp.Diff(leader.s.List(state.KindNodes, ""), lagger.s.List(state.KindNodes, "")); diff != "" {
		t.Errorf("caught-up follower differs (-leader +follower):\n%s", diff)
	}
}

// TestBackupRestoreOntoFreshCluster: a backup of a 3-member cluster,
// restored onto a fresh one-member cluster that already had writes of its
// own, brings back exactly the backup but for the kinds the cluster keeps
// (its own hosts); later writes get indexes above every Rev in it, and a
// member that joins afterwards gets it too.
func TestBackupRestoreOntoFreshCluster(t *testing.T) {
	src := newCluster(t, 3, nil)
	srcLeader := waitLeader(t, src)
	for i := range 50 {
		mustApply(t, srcLeader.s, put(state.KindAccounts, fmt.Sprintf("acct-%02d", i), fmt.Sprintf(`{"i":%d}`, i)))
	}
	mustApply(t, srcLeader.s, put("hosts", "old", `"the backed-up cluster's"`))
	if err := srcLeader.s.Consistent(context.Background()); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := srcLeader.s.Snapshot(&backup); err != nil {
		t.Fatal(err)
	}
	want := srcLeader.s.List(state.KindAccounts, "")
	var maxRev uint64
	for _, e := range want {
		maxRev = max(maxRev, e.Rev)
	}

	dst := newCluster(t, 1, func(c *Config) { c.KeepOnRestore = []string{"hosts"} })
	d := dst[0].s
	mustApply(t, d, put(state.KindAccounts, "zz-local", `1`))
	mustApply(t, d, put("hosts", "new", `"this cluster's"`))
	hosts := d.List("hosts", "")

	if err := d.Restore(bytes.NewReader(backup.Bytes()[:backup.Len()/2])); !errors.Is(err, state.ErrBadSnapshot) {
		t.Fatalf("restore of a truncated backup: %v, want ErrBadSnapshot", err)
	}
	if _, ok := d.Get(state.KindAccounts, "zz-local"); !ok {
		t.Fatal("a refused restore changed the state")
	}

	if err := d.Restore(bytes.NewReader(backup.Bytes())); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, d.List(state.KindAccounts, "")); diff != "" {
		t.Errorf("restored state (-backup +got):\n%s", diff)
	}
	if diff := cmp.Diff(hosts, d.List("hosts", "")); diff != "" {
		t.Errorf("the kind kept on restore (-before +after):\n%s", diff)
	}
	if idx := mustApply(t, d, put(state.KindMeta, "after", `1`)); idx <= maxRev {
		t.Errorf("write after restore at %d, not above the backup's revs (%d)", idx, maxRev)
	}
	if got := d.Leader(); got.API != dst[0].cfg.API {
		t.Errorf("leader after restore %+v: the backup's announcement was not replaced", got)
	}

	// A member joining later gets the restored state from a snapshot.
	joiner := newNode(t, filepath.Dir(dst[0].cfg.DataDir), "n2", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Join(ctx, "n2", joiner.addr()); err != nil {
		t.Fatal(err)
	}
	waitIndex(t, joiner.s, d.Index())
	if diff := cmp.Diff(want, joiner.s.List(state.KindAccounts, "")); diff != "" {
		t.Errorf("joiner after restore (-backup +got):\n%s", diff)
	}
	if diff := cmp.Diff(hosts, joiner.s.List("hosts", "")); diff != "" {
		t.Errorf("joiner's kept kind after restore (-before +after):\n%s", diff)
	}
}

// TestPeersBootstrap: servers that all know the full peer list form one
// cluster; starting them in any order, and restarting one, is harmless.
func TestPeersBootstrap(t *testing.T) {
	dir := t.TempDir()
	var peers []Peer
	for i := 1; i <= 3; i++ {
		peers = append(peers, Peer{ID: fmt.Sprintf("p%d", i), Addr: freeAddr(t)})
	}
	var nodes []*testNode
	for _, i := range []int{2, 0, 1} {
		p := peers[i]
		nodes = append(nodes, newNode(t, dir, p.ID, func(c *Config) {
			c.BindAddr = p.Addr
			c.Peers = peers
		}))
	}
	leader := waitLeader(t, nodes)
	idx := mustApply(t, leader.s, put(state.KindMeta, "x", `1`))
	f := followers(nodes, leader)[0]
	f.stop()
	f.start()
	waitIndex(t, f.s, idx)
	members, err := f.s.Members()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	if diff := cmp.Diff([]string{"p1", "p2", "p3"}, ids); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
}

// TestMembershipChanges: a graceful Close of the leader hands leadership
// over without an election timeout; the departed member is then removed
// and the two that remain keep working as a cluster of two.
func TestMembershipChanges(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitLeader(t, nodes)
	var chans []<-chan bool
	for _, f := range followers(nodes, leader) {
		chans = append(chans, f.s.LeaderCh())
	}
	start := time.Now()
	leader.stop() // transfers leadership first
	select {
	case <-chans[0]:
	case <-chans[1]:
	case <-time.After(5 * time.Second):
		t.Fatal("no remaining member became leader")
	}
	t.Logf("graceful handover took %v", time.Since(start))

	next := waitLeader(t, nodes)
	ctx := context.Background()
	if err := next.s.RemovePeer(ctx, leader.cfg.NodeID); err != nil {
		t.Fatal(err)
	}
	members, err := next.s.Members()
	if err != nil || len(members) != 2 {
		t.Fatalf("members after remove: %+v, %v", members, err)
	}
	idx := mustApply(t, next.s, put(state.KindMeta, "x", `1`))
	for _, f := range followers(nodes, next) {
		waitIndex(t, f.s, idx)
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestFollowerWriteFailure: a follower that cannot write its state stops
// (rather than drift), the others carry on, and once restarted it resumes
// from the log where its database stopped.
func TestFollowerWriteFailure(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	leader := waitLeader(t, nodes)
	broken := followers(nodes, leader)[0]
	broken.s.db.Close() // every later write to it fails

	idx := mustApply(t, leader.s, put(state.KindMeta, "a", `1`))
	eventually(t, 5*time.Second, "the follower to stop", func() bool {
		return broken.s.fsm.failure() != nil
	})
	if _, err := broken.s.Apply(context.Background(), []state.Op{put("k", "x", `1`)}); !errors.Is(err, ErrFailed) {
		t.Errorf("Apply on the failed follower: %v, want ErrFailed", err)
	}
	idx = mustApply(t, leader.s, put(state.KindMeta, "b", `2`))

	broken.stop()
	broken.start()
	waitIndex(t, broken.s, idx)
	for _, key := range []string{"a", "b"} {
		if _, ok := broken.s.Get(state.KindMeta, key); !ok {
			t.Errorf("restarted follower misses %s", key)
		}
	}
}
