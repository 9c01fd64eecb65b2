package fabric

import (
	"net/http/httptest"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric/placement"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/metrics/metricstest"
)

// TestMetrics scrapes the controller's figures after it placed what fits
// and left the rest pending: passes, heartbeats, placements, instances by
// state and the reason of the unplaced one.
func TestMetrics(t *testing.T) {
	s := newSim(t, 1) // one node with 4 CPU
	reg := metrics.NewRegistry()
	if err := s.c.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	spec := webSpec(3, "1")
	spec.Roles[0].Size.CPU = 2
	s.deploy(spec)
	s.settle(10, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })

	got := metricstest.Scrape(t, nil, srv.URL+metrics.Path, "")
	for _, w := range []struct {
		name   string
		labels []string
		min    float64
		max    float64
	}{
		{"weft_fabric_placements_total", nil, 2, 2},
		{"weft_fabric_instances", []string{"state", api.StateRunning}, 2, 2},
		{"weft_fabric_instances", []string{"state", api.StatePending}, 1, 1},
		{"weft_fabric_instances_unplaceable", []string{"reason", placement.WhyNoCapacity}, 1, 1},
		{"weft_fabric_reconcile_duration_seconds", nil, 1, 1e9},
		{"weft_fabric_reconcile_passes_total", []string{"why", passFirst}, 1, 1},
		{"weft_fabric_reconcile_passes_total", []string{"why", passChanged}, 1, 1e9},
		{"weft_fabric_reconcile_skipped_total", nil, 0, 1e9},
		{"weft_fabric_heartbeats_total", []string{"known", "true"}, 1, 1e9},
		{"weft_fabric_nodes", []string{"state", api.NodeReady}, 1, 1},
		{"weft_fabric_node_heartbeat_age_seconds", []string{"node", "node-1"}, 0, 10},
		{"weft_fabric_upgrades_in_progress", nil, 0, 0},
	} {
		v, ok := got.Value(w.name, w.labels...)
		if !ok || v < w.min || v > w.max {
			t.Errorf("%s%v = %v (present %v), want %v to %v", w.name, w.labels, v, ok, w.min, w.max)
		}
	}
}
