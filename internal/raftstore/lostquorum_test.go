package raftstore

import (
	"context"
	"testing"

	"github.com/weftcloud/weft/internal/state"
)

// TestRecoverLostQuorum: two of three servers are lost for good, so the
// survivor can elect no leader; Recover makes it a cluster of one, which
// leads, keeps what was committed and takes writes. Recover refuses a
// running server and peers without the server itself.
func TestRecoverLostQuorum(t *testing.T) {
	nodes := newCluster(t, 3, nil)
	// A loaded machine may hold an election under the first write: write
	// through whoever leads until one is committed.
	var leader *testNode
	var idx uint64
	for try := 0; ; try++ {
		leader = waitLeader(t, nodes)
		var err error
		if idx, err = leader.s.Apply(context.Background(), []state.Op{put(state.KindMeta, "kept", `1`)}); err == nil {
			break
		} else if try == 5 {
			t.Fatal(err)
		}
	}
	survivor := followers(nodes, leader)[0]
	waitIndex(t, survivor.s, idx)
	for _, n := range nodes {
		if n != survivor {
			n.stop()
		}
	}
	peers := []Peer{{ID: survivor.cfg.NodeID, Addr: survivor.addr()}}
	if err := Recover(survivor.cfg.DataDir, survivor.cfg.NodeID, peers, testLogger()); err == nil {
		t.Error("Recover changed a running server")
	}
	survivor.stop()
	if err := Recover(survivor.cfg.DataDir, survivor.cfg.NodeID, []Peer{{ID: "other", Addr: "127.0.0.1:1"}}, testLogger()); err == nil {
		t.Error("Recover took peers without the server itself")
	}
	if err := Recover(survivor.cfg.DataDir, survivor.cfg.NodeID, peers, testLogger()); err != nil {
		t.Fatal(err)
	}
	survivor.start()
	waitLeader(t, []*testNode{survivor})
	if _, ok := survivor.s.Get(state.KindMeta, "kept"); !ok {
		t.Error("a committed write was lost in the recovery")
	}
	mustApply(t, survivor.s, put(state.KindMeta, "after", `1`))
	members, err := survivor.s.Members()
	if err != nil || len(members) != 1 {
		t.Errorf("members after the recovery: %+v %v", members, err)
	}
}
