package fabric

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/state"
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
		registerNodes(b, s, 1000, api.Resources{CPU: 16, Memory: 64 << 30})
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

// registerNodes registers n simulated nodes of the given capacity in 10
// fault domains.
func registerNodes(b *testing.B, s *sim, n int, capacity api.Resources) {
	for i := range n {
		node := &simNode{name: fmt.Sprintf("node-%04d", i), running: map[string]api.InstanceStatus{}}
		s.nodes[node.name] = node
		if _, err := s.c.RegisterNode(s.ctx, api.NodeRegistration{
			Name: node.name, Host: "127.0.0.1", FaultDomain: fmt.Sprintf("fd%d", i%10),
			Capacity: capacity, Runtimes: []string{api.RuntimeProcess},
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrape10k measures one scrape of a controller's /metrics
// handler (the fabric's collectors read every instance, node and service
// from the store) with 10,000 instances placed on 1,000 nodes.
func BenchmarkScrape10k(b *testing.B) {
	s := newSim(b, 0)
	registerNodes(b, s, 1000, api.Resources{CPU: 16, Memory: 64 << 30})
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

// BenchmarkList20kAfterWrites measures what every reader of the whole
// state (a pass, the nodes' assignment views, the load balancer's sync)
// pays to list 20,000 instances after a write of 50 of them (a batch of
// heartbeats): caught up from the store's journal, and listed whole as
// over a store without one (as before the journal).
func BenchmarkList20kAfterWrites(b *testing.B) {
	store, err := state.Open(filepath.Join(b.TempDir(), "state.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	recs := make([]*instanceRecord, 20000)
	var ops []state.Op
	for i := range recs {
		recs[i] = &instanceRecord{Instance: api.Instance{ID: fmt.Sprintf("svc-%03d-work-%d-abcd", i/100, i%100), Tenant: api.DefaultTenant,
			Service: fmt.Sprintf("svc-%03d", i/100), Role: "work", Slot: i % 100, Node: fmt.Sprintf("node-%04d", i%1000),
			State: api.StateRunning, Health: api.HealthHealthy, Desired: api.DesiredRunning},
			Spec: api.RoleSpec{Name: "work", Runtime: api.RuntimeProcess, Instances: 100, Command: []string{"./run"}}}
		ops = append(ops, put(state.KindInstances, recs[i].key(), recs[i]))
		if len(ops) == 1000 {
			if _, err := store.Apply(context.Background(), ops); err != nil {
				b.Fatal(err)
			}
			ops = nil
		}
	}
	for _, tc := range []struct {
		name  string
		store state.Store
	}{{"journal", store}, {"whole", struct{ state.Store }{store}}} {
		b.Run(tc.name, func(b *testing.B) {
			var d decoded[instanceRecord]
			d.list(tc.store, state.KindInstances)
			n := 0
			for b.Loop() {
				b.StopTimer()
				var ops []state.Op
				for range 50 {
					n = (n + 397) % len(recs)
					recs[n].Restarts++
					ops = append(ops, put(state.KindInstances, recs[n].key(), recs[n]))
				}
				if _, err := store.Apply(context.Background(), ops); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if got, _ := d.list(tc.store, state.KindInstances); len(got) != len(recs) {
					b.Fatalf("listed %d", len(got))
				}
			}
		})
	}
}

// BenchmarkServiceList200x100 measures a list of 200 services of 100
// running instances each, with each role's counts (what the fleet harness
// and a dashboard poll): the services' and their instances' records are
// decoded already, as between writes.
func BenchmarkServiceList200x100(b *testing.B) {
	s := newSim(b, 0)
	var ops []state.Op
	for i := range 200 {
		spec := webSpec(100, "1")
		spec.Name = fmt.Sprintf("svc-%03d", i)
		svc := serviceRecord{Service: api.Service{Name: spec.Name, Tenant: api.DefaultTenant, Spec: spec, Status: api.ServiceStable}}
		ops = append(ops, put(state.KindServices, svc.key(), svc))
		role := spec.Roles[0]
		for slot := range 100 {
			in := &instanceRecord{Instance: api.Instance{ID: fmt.Sprintf("%s-web-%d-abcd", spec.Name, slot), Tenant: api.DefaultTenant,
				Service: spec.Name, Role: role.Name, Slot: slot, Node: fmt.Sprintf("node-%04d", (i*100+slot)%1000),
				State: api.StateRunning, Health: api.HealthHealthy, Desired: api.DesiredRunning},
				Spec: role, Template: templateHash(role)}
			ops = append(ops, put(state.KindInstances, in.key(), in))
		}
		if _, err := s.store.Apply(context.Background(), ops); err != nil {
			b.Fatal(err)
		}
		ops = nil
	}
	for b.Loop() {
		page, _ := s.c.ServicesPage(context.Background(), api.AllTenants, "", 1000)
		if len(page) != 200 || page[0].Roles[0].Healthy != 100 {
			b.Fatalf("%d services, the first with %+v", len(page), page[0].Roles)
		}
	}
}

// BenchmarkSteadyPass20k measures one reconcile pass over 1,000 nodes and
// 200 services of 100 instances, every one running and healthy: the pass
// a heartbeat that changed an instance's status, or the timer tick, runs
// at the size of issue 19's fleet.
func BenchmarkSteadyPass20k(b *testing.B) {
	s := healthyFleet(b)
	cpu := processCPU(b)
	for b.Loop() {
		if err := s.c.reconcile(s.ctx); err != nil {
			b.Fatal(err)
		}
	}
	// The CPU the passes took, the garbage collector's included: on a
	// machine shared with other work, wall time per pass measures the
	// machine's load as much as the pass.
	b.ReportMetric(float64((processCPU(b)-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkDeployPass20k measures the pass that places a new service of
// 100 instances beside the 20,000 of BenchmarkSteadyPass20k (each
// iteration deploys one more, not timed).
func BenchmarkDeployPass20k(b *testing.B) {
	s := healthyFleet(b)
	var cpu time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		spec := webSpec(100, "1")
		spec.Name = fmt.Sprintf("new-%03d", n)
		n++
		s.deploy(spec)
		before := processCPU(b)
		b.StartTimer()
		if err := s.c.reconcile(s.ctx); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU(b) - before
	}
	if placed := len(s.c.Instances(s.ctx, api.DefaultTenant, "")); placed != 20000+100*n {
		b.Fatalf("%d instances, want %d", placed, 20000+100*n)
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// healthyFleet is a sim of 1,000 nodes in 10 fault domains running 200
// services of 100 instances, every one placed, running and healthy.
func healthyFleet(b *testing.B) *sim { return healthyFleetOf(b, api.KindWorker) }

// healthyFleetOf is healthyFleet with roles of kind (web roles publish an
// endpoint each, on ports 20000 and up).
func healthyFleetOf(b *testing.B, kind string) *sim {
	s := newSim(b, 0)
	registerNodes(b, s, 1000, api.Resources{CPU: 64, Memory: 256 << 30})
	for i := range 200 {
		spec := webSpec(100, "1")
		spec.Name = fmt.Sprintf("svc-%03d", i)
		if kind == api.KindWeb {
			spec.Roles[0].Kind = api.KindWeb
			spec.Roles[0].Endpoints = []api.Endpoint{{Name: "http", Port: 20000 + i}}
		}
		s.deploy(spec)
	}
	if err := s.c.reconcile(s.ctx); err != nil {
		b.Fatal(err)
	}
	// Every node reports its instances running and healthy, as the sim's
	// step would, without building each node's assignments.
	reports := map[string][]api.InstanceStatus{}
	for _, in := range s.c.Instances(s.ctx, api.DefaultTenant, "") {
		st := api.InstanceStatus{ID: in.ID, State: api.StateRunning, Health: api.HealthHealthy}
		if kind == api.KindWeb {
			st.Ports = map[string]int{"http": 30000}
		}
		reports[in.Node] = append(reports[in.Node], st)
	}
	for node, sts := range reports {
		if _, err := s.c.Heartbeat(s.ctx, node, api.Heartbeat{Instances: sts}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.c.reconcile(s.ctx); err != nil {
		b.Fatal(err)
	}
	healthy := 0
	for _, in := range s.c.Instances(s.ctx, api.DefaultTenant, "") {
		if in.Health == api.HealthHealthy {
			healthy++
		}
	}
	if healthy != 20000 {
		b.Fatalf("%d of 20,000 healthy", healthy)
	}
	return s
}

// BenchmarkEndpoints20k measures what each server's load balancer sync
// reads after every write to the state: the published endpoints with
// their backends, 200 web roles of 100 healthy instances.
func BenchmarkEndpoints20k(b *testing.B) {
	s := healthyFleetOf(b, api.KindWeb)
	if eps := s.c.endpoints(); len(eps) != 200 || len(eps[0].Backends) != 100 {
		b.Fatalf("%d endpoints, the first with %d backends; want 200 of 100", len(eps), len(eps[0].Backends))
	}
	for b.Loop() {
		s.c.endpoints()
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLBSyncDuringWrites20k runs the load balancer's sync loop
// (RunLB) over 200 web roles of 100 instances while the state is written
// back to back, one instance record a write as heartbeats' reports are:
// how many syncs a write costs, and the share of the wall time spent
// syncing (lbSyncSpacing bounds it near a fifth).
func BenchmarkLBSyncDuringWrites20k(b *testing.B) {
	s := healthyFleetOf(b, api.KindWeb)
	s.c.lb = nopBalancer{}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { s.c.RunLB(ctx); close(done) }()
	rec, ok := s.c.findInstance(api.AllTenants, s.c.Instances(s.ctx, api.DefaultTenant, "")[0].ID)
	if !ok {
		b.Fatal("no instance")
	}
	syncsBefore, secondsBefore := histogramTotals(b, s.c.figures.lbSync)
	began := time.Now()
	for b.Loop() {
		if err := s.c.apply(ctx, []state.Op{put(state.KindInstances, rec.key(), rec)}); err != nil {
			b.Fatal(err)
		}
	}
	wall := time.Since(began)
	cancel()
	<-done
	syncs, seconds := histogramTotals(b, s.c.figures.lbSync)
	b.ReportMetric((syncs-syncsBefore)/float64(b.N), "syncs/op")
	b.ReportMetric((seconds-secondsBefore)/wall.Seconds(), "sync-share")
}

// BenchmarkAssignmentView20k measures building the nodes' assignment
// views (assignViews.view) over 1,000 nodes and 200 services of 100
// instances after a write of one instance record, as each batch of
// heartbeats' reports makes the next assignment query build one.
func BenchmarkAssignmentView20k(b *testing.B) {
	s := healthyFleet(b)
	rec, ok := s.c.findInstance(api.AllTenants, s.c.Instances(s.ctx, api.DefaultTenant, "")[0].ID)
	if !ok {
		b.Fatal("no instance")
	}
	cpu := time.Duration(0)
	for b.Loop() {
		b.StopTimer()
		if err := s.c.apply(s.ctx, []state.Op{put(state.KindInstances, rec.key(), rec)}); err != nil {
			b.Fatal(err)
		}
		before := processCPU(b)
		b.StartTimer()
		if v := s.c.assignViews.view(s.c); len(v.byNode) != 1000 {
			b.Fatalf("a view of %d nodes, want 1,000", len(v.byNode))
		}
		cpu += processCPU(b) - before
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

type nopBalancer struct{}

func (nopBalancer) Update([]lb.Endpoint) error          { return nil }
func (nopBalancer) Drain(context.Context, string) error { return nil }

// histogramTotals is h's count of observations and their sum.
func histogramTotals(b *testing.B, h prometheus.Histogram) (count, sum float64) {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		b.Fatal(err)
	}
	return float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
}
