package fleet

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	ServeIfChild() // the harness starts its servers from this binary
	os.Exit(m.Run())
}

// TestFleetSmall runs the whole harness on a tiny fleet, so that it keeps
// working: a real server process, three real agents, a deploy, a node
// killed and healed, every figure read.
func TestFleetSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process and three agents")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Nodes: 3, Instances: 12, PerService: 4, CPUWindow: 500 * time.Millisecond,
		Dir: t.TempDir(), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 3 || res.Instances != 12 || res.NodesKilled != 1 {
		t.Errorf("result for %d nodes, %d instances, %d killed; want 3, 12, 1", res.Nodes, res.Instances, res.NodesKilled)
	}
	for name, v := range map[string]float64{
		"allRunningSeconds": res.AllRunningSeconds, "healSeconds": res.HealSeconds,
		"heartbeatsPerSecond": res.HeartbeatsPerSecond,
		"reconcileP99Ms":      res.ReconcileP99Ms, "apiP99Ms": res.APIP99Ms, "controllerRSSBytes": float64(res.ControllerRSSBytes),
	} {
		if !(v > 0) {
			t.Errorf("%s = %v, want a measurement", name, v)
		}
	}
	if res.ReconcilePasses == 0 {
		t.Error("no reconcile pass counted from the controller's metrics")
	}
	if s := Summary(res); !strings.Contains(s, "all running") {
		t.Errorf("summary without its figures:\n%s", s)
	}
}

func TestHistogramQuantile(t *testing.T) {
	h, err := parseHistogram(strings.NewReader(`# TYPE x histogram
x_bucket{le="0.001"} 10
x_bucket{le="0.01"} 90
x_bucket{le="0.1"} 100
x_bucket{le="+Inf"} 100
x_sum 1
x_count 100
`), "x")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ q, want float64 }{
		{0.05, 0.0005}, // halfway into the first bucket, from 0
		{0.5, 0.0055},  // halfway into the second
		{0.99, 0.091},  // nine tenths into the third
	} {
		if got := h.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := h.since(h).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("quantile of nothing observed = %v, want NaN", got)
	}
}

func TestCounterSumsItsSeries(t *testing.T) {
	got, err := parseCounter(strings.NewReader(`# TYPE x_total counter
x_total{known="true"} 120
x_total{known="false"} 3
x_total_other 1000
y_total 7
`), "x_total")
	if err != nil || got != 123 {
		t.Fatalf("parseCounter = %v, %v; want 123", got, err)
	}
}
