package fabric

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftcloud/weft/api"
)

// BenchmarkAPIWhilePassesRun20k measures the API calls of issue 19's
// fleet (1,000 nodes, 200 services of 100 instances) made while the
// controller is busy: a goroutine churns a service of 500 instances
// (scaled up, placed, reported running, scaled to zero, reported
// stopped, removed: reconcile passes writing batches of 500 records, and
// heartbeats writing their changes) while the benchmark deploys a new
// version of a small service (of ten, in turn), lists the services with
// their role counts and lists one service's instances, each call timed on
// its own. The store is a real one on disk (every batch fsynced).
func BenchmarkAPIWhilePassesRun20k(b *testing.B) {
	s := newSim(b, 0)
	for i := range 1000 { // in ten fault domains, each node big enough for its share
		s.addNode(fmt.Sprintf("node-%04d", i), fmt.Sprintf("fd%d", i%10), 64)
	}
	for i := range 200 {
		spec := webSpec(100, "1")
		spec.Name = fmt.Sprintf("svc-%03d", i)
		s.deploy(spec)
	}
	churn := webSpec(0, "1")
	churn.Name = "churn"
	s.deploy(churn)
	// The deploys measured go round ten services: one the pass is rolling
	// at that moment makes it run again, alone among the API's writes
	// of services (Controller.svcWrites).
	const probes = 10
	probe := webSpec(1, "0")
	for i := range probes {
		probe.Name = fmt.Sprintf("probe-%d", i)
		s.deploy(probe)
	}
	if err := s.c.reconcile(s.ctx); err != nil {
		b.Fatal(err)
	}
	reportAll(b, s)
	if err := s.c.reconcile(s.ctx); err != nil {
		b.Fatal(err)
	}

	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	cycles := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, n := range []int{500, 0} {
				if _, err := s.c.Scale(ctx, api.DefaultTenant, "churn", "web", n); err != nil {
					if ctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				for range 2 { // place or stop; then, once reported, start or remove
					if err := s.c.reconcile(ctx); err != nil && ctx.Err() == nil {
						b.Error(err)
						return
					}
					reportAll(b, s)
				}
			}
			cycles++
		}
	}()

	var deploys, lists, insts []time.Duration
	timed := func(into *[]time.Duration, f func() error) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(start))
	}
	v := 0
	for b.Loop() {
		v++
		probe.Name = fmt.Sprintf("probe-%d", v%probes)
		probe.Roles[0].Settings = map[string]string{"VERSION": fmt.Sprint(v)}
		probe.Roles[0].Package = s.pkg
		timed(&deploys, func() error { _, err := s.c.Deploy(s.ctx, api.DefaultTenant, probe); return err })
		timed(&lists, func() error {
			if got := s.c.Services(s.ctx, api.DefaultTenant); len(got) != 201+probes {
				return fmt.Errorf("%d services listed", len(got))
			}
			return nil
		})
		timed(&insts, func() error {
			if got := s.c.Instances(s.ctx, api.DefaultTenant, "svc-007"); len(got) != 100 {
				return fmt.Errorf("%d instances of svc-007 listed", len(got))
			}
			return nil
		})
	}
	cancel()
	wg.Wait()
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"deploy", deploys}, {"services", lists}, {"instances", insts}} {
		slices.Sort(m.ds)
		b.ReportMetric(float64(m.ds[len(m.ds)/2].Microseconds())/1000, m.name+"-p50-ms")
		b.ReportMetric(float64(m.ds[len(m.ds)*99/100].Microseconds())/1000, m.name+"-p99-ms")
	}
	b.ReportMetric(float64(cycles), "churn-cycles")
	b.ReportMetric(testutil.ToFloat64(s.c.figures.conflicts), "pass-reruns")
}

// reportAll sends every node's heartbeat as its agent would once it has
// done what it was told: instances meant to run are running and healthy,
// those meant to stop are stopped. A heartbeat that changes nothing
// writes nothing.
func reportAll(b *testing.B, s *sim) {
	reports := map[string][]api.InstanceStatus{}
	for _, in := range s.c.Instances(s.ctx, api.DefaultTenant, "") {
		if in.Node == "" {
			continue
		}
		st := api.InstanceStatus{ID: in.ID, State: api.StateRunning, Health: api.HealthHealthy}
		if in.Desired == api.DesiredStopped {
			st = api.InstanceStatus{ID: in.ID, State: api.StateStopped, Health: api.HealthUnknown}
		}
		reports[in.Node] = append(reports[in.Node], st)
	}
	var wg sync.WaitGroup
	for node, sts := range reports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.c.Heartbeat(s.ctx, node, api.Heartbeat{Instances: sts}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}
