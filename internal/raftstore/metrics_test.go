package raftstore

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/metrics/metricstest"
	"github.com/weftcloud/weft/internal/state"
)

// TestMetrics scrapes a one-server store's figures after it became leader
// and applied a batch.
func TestMetrics(t *testing.T) {
	n := newCluster(t, 1, nil)[0]
	// Leader ready: its announcement (an apply of its own) is done, so
	// the one below is the only one between the scrapes.
	for leader := range n.s.LeaderCh() {
		if leader {
			break
		}
	}
	reg := metrics.NewRegistry()
	if err := n.s.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	before := metricstest.Scrape(t, nil, srv.URL+metrics.Path, "")
	idx, err := n.s.Apply(context.Background(), []state.Op{{Kind: state.KindNodes, Key: "n", Value: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	got := metricstest.Scrape(t, nil, srv.URL+metrics.Path, "")
	value := func(f metricstest.Families, name string, labels ...string) float64 {
		v, _ := f.Value(name, labels...)
		return v
	}
	if d := value(got, "weft_raft_apply_duration_seconds", "result", "ok") - value(before, "weft_raft_apply_duration_seconds", "result", "ok"); d != 1 {
		t.Errorf("weft_raft_apply_duration_seconds{result=ok} grew by %v, want 1", d)
	}
	if v := value(got, "weft_raft_commit_index"); v < float64(idx) {
		t.Errorf("weft_raft_commit_index = %v, want at least the batch's index %d", v, idx)
	}
	if v := value(got, "weft_raft_leader"); v != 1 {
		t.Errorf("weft_raft_leader = %v, want 1", v)
	}
	if v := value(got, "weft_raft_leadership_changes_total"); v < 1 {
		t.Errorf("weft_raft_leadership_changes_total = %v, want at least the election", v)
	}
}
