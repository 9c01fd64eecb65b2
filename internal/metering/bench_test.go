package metering

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// BenchmarkMeterStep10k measures one meter step over 10,000 running
// instances of 10 services on 25 nodes, placed and reported running
// through the real controller: reading the footprint from the store,
// counting a minute, and the one fsynced batch.
//
//	go test -run '^$' -bench MeterStep10k -benchtime 20x ./internal/metering/
func BenchmarkMeterStep10k(b *testing.B) {
	var nodes []string
	for i := range 25 {
		nodes = append(nodes, fmt.Sprintf("node-%02d", i))
	}
	f := newFleet(b, t0, nodes...)
	f.patience = 2 * time.Minute
	for i := range 10 {
		f.deploy(fmt.Sprintf("svc%d", i), 1000, api.Size{CPU: 0.01, Memory: 1 << 20})
	}
	f.settle("10,000 running", func(list []api.Instance) bool {
		running := 0
		for _, in := range list {
			if in.State == api.StateRunning {
				running++
			}
		}
		return running == 10000
	})
	f.stopReconciler() // its passes over 10,000 instances would share the cores with the meter
	m := f.meter()
	f.step(m)
	for b.Loop() {
		f.clock.Advance(time.Minute)
		f.step(m)
	}
	b.ReportMetric(10000, "instances")
}
