package fabric

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/metrics"
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

// BenchmarkScrape10k measures one scrape of a controller's /metrics
// handler (the fabric's collectors read every instance, node and service
// from the store) with 10,000 instances placed on 1,000 nodes.
func BenchmarkScrape10k(b *testing.B) {
	s := newSim(b, 0)
	for i := 0; i < 1000; i++ {
		n := &simNode{name: fmt.Sprintf("node-%04d", i), running: map[string]api.InstanceStatus{}}
		s.nodes[n.name] = n
		if _, err := s.c.RegisterNode(s.ctx, api.NodeRegistration{
			Name: n.name, Host: "127.0.0.1", FaultDomain: fmt.Sprintf("fd%d", i%10),
			Capacity: api.Resources{CPU: 16, Memory: 64 << 30}, Runtimes: []string{api.RuntimeProcess},
		}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		spec := webSpec(1000, "1")
		spec.Name = fmt.Sprintf("svc%d", i)
		s.deploy(spec)
	}
	if err := s.c.reconcile(s.ctx); err != nil {
		b.Fatal(err)
	}
	reg := metrics.NewRegistry()
	if err := s.c.Register(reg); err != nil {
		b.Fatal(err)
	}
	h := metrics.Handler(reg)
	var size int
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", metrics.Path, nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkDeployAmong1000Services measures one deploy (a new version of
// a web role with a published port) on a controller that already holds
// 1,000 services, each publishing a port of its own: the cost a deploy
// pays for the checks that span services (published ports).
func BenchmarkDeployAmong1000Services(b *testing.B) {
	s := newSim(b, 3)
	web := func(name string, port int, version string) api.ServiceSpec {
		spec := webSpec(1, version)
		spec.Name = name
		spec.Roles[0].Kind = api.KindWeb
		spec.Roles[0].Endpoints = []api.Endpoint{{Name: "http", Protocol: api.ProtocolHTTP, Port: port}}
		return spec
	}
	for i := range 1000 {
		s.deploy(web(fmt.Sprintf("svc%04d", i), 20000+i, "1"))
	}
	v := 0
	for b.Loop() {
		v++
		s.deploy(web("bench", 30000, fmt.Sprint(v)))
	}
}
