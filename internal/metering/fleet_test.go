package metering

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
)

// fleet is the real fabric controller over a real store, its reconciler
// running, with nodes the test plays: report makes each node read its
// assignments and report them as the test says. The clock the controller
// and the meters read moves only when the test moves it.
type fleet struct {
	t     testing.TB
	ctx   context.Context
	store *state.DB
	ctl   *fabric.Controller
	clock *clock
	pkg   string

	// states says what a node reports for the instances of a service
	// (default running); silent nodes report nothing.
	states         map[string]string
	silent         map[string]bool
	nodes          []string
	stopReconciler func() // idempotent
	// patience bounds settle, in real time (default five seconds).
	patience time.Duration
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newFleet(t testing.TB, start time.Time, nodes ...string) *fleet {
	t.Helper()
	dir := t.TempDir()
	store, err := state.Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := pkgstore.Open(filepath.Join(dir, "packages"))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: start}
	// Nodes report only when the test says, while the test moves the
	// clock by minutes: their heartbeats never expire.
	ctl := fabric.New(fabric.Config{Clock: clk.Now, Tick: 5 * time.Millisecond, HeartbeatTTL: 1000 * time.Hour}, store, pkgs, nil)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ctl.Run(runCtx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		stop()
		store.Close()
	})
	f := &fleet{t: t, ctx: context.Background(), store: store, ctl: ctl, clock: clk, states: map[string]string{}, silent: map[string]bool{},
		stopReconciler: stop}
	var empty bytes.Buffer
	if err := pkgarchive.Pack(t.TempDir(), &empty); err != nil {
		t.Fatal(err)
	}
	pkg, err := ctl.PutPackage(f.ctx, &empty)
	if err != nil {
		t.Fatal(err)
	}
	f.pkg = pkg.Digest
	for _, n := range nodes {
		f.addNode(n)
	}
	return f
}

// addNode registers a node of 4 cores and 8 GiB.
func (f *fleet) addNode(name string) {
	f.t.Helper()
	_, err := f.ctl.RegisterNode(f.ctx, api.NodeRegistration{
		Name: name, Address: "http://127.0.0.1:1", Host: "127.0.0.1", FaultDomain: name,
		Capacity: api.Resources{CPU: 4, Memory: 8 << 30}, Runtimes: []string{api.RuntimeProcess},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.nodes = append(f.nodes, name)
}

var smallSize = api.Size{CPU: 0.25, Memory: 128 << 20}

func (f *fleet) deploy(name string, instances int, size api.Size) {
	f.t.Helper()
	_, err := f.ctl.Deploy(f.ctx, api.DefaultTenant, api.ServiceSpec{Name: name, Roles: []api.RoleSpec{{
		Name: "work", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: f.pkg,
		Command: []string{"./work"}, Instances: instances, Size: size,
	}}})
	if err != nil {
		f.t.Fatal(err)
	}
}

// report has every node that is not silent report its assignments: those
// to stop as stopped, the others in the state states gives their service.
func (f *fleet) report() {
	f.t.Helper()
	for _, n := range f.nodes {
		if f.silent[n] {
			continue
		}
		as, err := f.ctl.Assignments(f.ctx, n, 0, 0)
		if err != nil {
			f.t.Fatal(err)
		}
		var hb api.Heartbeat
		for _, a := range as.Instances {
			st := api.InstanceStatus{ID: a.Instance.ID, State: api.StateRunning, Health: api.HealthHealthy}
			if s, ok := f.states[a.Instance.Service]; ok {
				st.State, st.Health = s, api.HealthUnknown
			}
			if a.Instance.Desired == api.DesiredStopped {
				st.State, st.Health = api.StateStopped, api.HealthUnknown
			}
			hb.Instances = append(hb.Instances, st)
		}
		if _, err := f.ctl.Heartbeat(f.ctx, n, hb); err != nil {
			f.t.Fatal(err)
		}
	}
}

// settle reports until cond holds, for at most patience in real time
// (the reconciler runs on its own; the simulated clock stands still).
func (f *fleet) settle(what string, cond func([]api.Instance) bool) {
	f.t.Helper()
	if f.patience == 0 {
		f.patience = 5 * time.Second
	}
	deadline := time.Now().Add(f.patience)
	for time.Now().Before(deadline) {
		if cond(f.ctl.Instances(f.ctx, api.DefaultTenant, "")) {
			return
		}
		f.report()
		time.Sleep(5 * time.Millisecond)
	}
	var b strings.Builder
	for _, in := range f.ctl.Instances(f.ctx, api.DefaultTenant, "") {
		fmt.Fprintf(&b, "  %s node=%s desired=%s state=%s %s\n", in.ID, in.Node, in.Desired, in.State, in.Message)
	}
	f.t.Fatalf("%s: not reached; instances:\n%s", what, b.String())
}

// runningOn is a settle condition: service has exactly these instances,
// running, on these nodes.
func runningOn(service string, nodes ...string) func([]api.Instance) bool {
	return func(list []api.Instance) bool {
		var got []string
		for _, in := range list {
			if in.Service != service {
				continue
			}
			if in.State != api.StateRunning || in.Desired != api.DesiredRunning {
				return false
			}
			got = append(got, in.Node)
		}
		return strings.Join(got, ",") == strings.Join(nodes, ",")
	}
}

func (f *fleet) meter() *Meter {
	return New(Config{Store: f.store, Footprint: f.ctl.Footprint, Now: f.clock.Now})
}

// step has m step at the fleet's clock, failing the test on an error.
func (f *fleet) step(m *Meter) {
	f.t.Helper()
	if err := m.Step(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// totals sums the stored usage by "tenant/service/meter/dimension".
func totals(l *Ledger) map[string]float64 {
	out := map[string]float64{}
	for _, r := range l.Usage("", time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		out[r.Tenant+"/"+r.Service+"/"+r.Meter+"/"+r.Dimension] += r.Quantity
	}
	return out
}
