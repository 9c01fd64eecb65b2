package fabric

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// BenchmarkControllerPlace10kOn1k measures the whole controller, store
// writes included: 1,000 simulated nodes in 10 fault domains, then 10
// services of 1,000 instances each deployed at once; reconcile passes run
// until every instance is placed. The pure scheduler has its own benchmark
// in package placement.
func BenchmarkControllerPlace10kOn1k(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		s := newSim(b, 0)
		for i := 0; i < 1000; i++ {
			n := &simNode{name: fmt.Sprintf("node-%04d", i), running: map[string]api.InstanceStatus{}}
			s.nodes[n.name] = n
			_, err := s.c.RegisterNode(s.ctx, api.NodeRegistration{
				Name: n.name, Host: "127.0.0.1", FaultDomain: fmt.Sprintf("fd%d", i%10),
				Capacity: api.Resources{CPU: 16, Memory: 64 << 30}, Runtimes: []string{api.RuntimeProcess},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < 10; i++ {
			spec := webSpec(1000, "1")
			spec.Name = fmt.Sprintf("svc%d", i)
			s.deploy(spec)
		}
		b.StartTimer()
		start := time.Now()
		passes := 0
		for placed := 0; placed < 10000; passes++ {
			if err := s.c.reconcile(s.ctx); err != nil {
				b.Fatal(err)
			}
			placed = 0
			for _, in := range s.c.Instances(s.ctx, api.DefaultTenant, "") {
				if in.Node != "" {
					placed++
				}
			}
		}
		elapsed := time.Since(start)
		b.ReportMetric(10000/elapsed.Seconds(), "placements/s")
		b.ReportMetric(float64(passes), "passes")
	}
}
