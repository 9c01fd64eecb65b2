package fabric

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// TestAPIWritesDoNotWaitForTheLock: with the controller's lock held by
// someone else (a pass writing its batch, say), deploys, scales,
// rollbacks, deletes, plans and the lists still complete.
func TestAPIWritesDoNotWaitForTheLock(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(2, "1"))
	spec := webSpec(2, "2")
	spec.Roles[0].Package = s.pkg

	locked, release := make(chan struct{}), make(chan struct{})
	go func() {
		s.c.mu.Lock()
		close(locked)
		<-release
		s.c.mu.Unlock()
	}()
	<-locked
	defer close(release)

	done := make(chan error, 1)
	go func() {
		done <- func() error {
			if _, err := s.c.Deploy(s.ctx, api.DefaultTenant, spec); err != nil {
				return fmt.Errorf("deploy: %w", err)
			}
			if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 3); err != nil {
				return fmt.Errorf("scale: %w", err)
			}
			if _, err := s.c.Rollback(s.ctx, api.DefaultTenant, "hello"); err != nil {
				return fmt.Errorf("rollback: %w", err)
			}
			if _, err := s.c.Plan(s.ctx, api.DefaultTenant, spec); err != nil {
				return fmt.Errorf("plan: %w", err)
			}
			if got := len(s.c.Services(s.ctx, api.DefaultTenant)); got != 1 {
				return fmt.Errorf("%d services listed", got)
			}
			s.c.Instances(s.ctx, api.DefaultTenant, "hello")
			if _, err := s.c.DeleteService(s.ctx, api.DefaultTenant, "hello", false); err != nil {
				return fmt.Errorf("delete: %w", err)
			}
			return nil
		}()
	}()
	// Not a measure of time: a deadline, so that a call blocked on the
	// lock fails the test rather than hanging it.
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("an API call waited for the controller's lock, held by someone else")
	}
	svc, err := s.c.Service(s.ctx, api.DefaultTenant, "hello")
	if err != nil || svc.Version != 3 || svc.Status != api.ServiceDeleting || svc.Spec.Roles[0].Instances != 3 {
		t.Errorf("service = %+v, %v; want version 3 (deployed, rolled back), 3 instances, deleting", svc, err)
	}
}

// interleaved is a store whose next Apply first runs between: another
// writer getting in after a decision read the state and before it is
// written.
type interleaved struct {
	state.Store
	mu      sync.Mutex
	between func()
}

func (s *interleaved) Apply(ctx context.Context, ops []state.Op) (uint64, error) {
	s.mu.Lock()
	f := s.between
	s.between = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return s.Store.Apply(ctx, ops)
}

// interleave makes the controller's next write run f first.
func (s *sim) interleave(f func()) {
	st := &interleaved{Store: s.store, between: f}
	s.c.store = st
}

// TestConcurrentDeploysOfOneService: a deploy that another deploy of the
// same service overtakes between its decision and its write decides again
// on the model written meanwhile: both land, one after the other, each a
// version, and neither model is lost.
func TestConcurrentDeploysOfOneService(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(2, "1"))
	var second api.Service
	s.interleave(func() { second = s.deploy(webSpec(2, "b")) })
	first := s.deploy(webSpec(2, "a"))

	if second.Version != 2 || first.Version != 3 {
		t.Errorf("versions returned: overtaking deploy %d, overtaken %d; want 2 and 3", second.Version, first.Version)
	}
	rec, _ := get[serviceRecord](s.store, state.KindServices, serviceKey(api.DefaultTenant, "hello"))
	var history []string
	for _, r := range rec.Revisions {
		history = append(history, fmt.Sprintf("v%d:%s", r.Version, r.Spec.Roles[0].Settings["VERSION"]))
	}
	history = append(history, fmt.Sprintf("v%d:%s", rec.Version, rec.Spec.Roles[0].Settings["VERSION"]))
	if diff := cmp.Diff([]string{"v1:1", "v2:b", "v3:a"}, history); diff != "" {
		t.Errorf("versions stored (-want +got):\n%s", diff)
	}
	if n := testutil.ToFloat64(s.c.figures.retried); n != 1 {
		t.Errorf("%v writes decided again, want 1", n)
	}
	if updated := s.countEvents("service.updated"); updated != 2 {
		t.Errorf("%d service.updated events, want 2", updated)
	}
}

// TestConcurrentDeploysRace deploys one service from several goroutines
// at once (for the race detector, and the retries under real contention):
// every deploy lands as a version of its own.
func TestConcurrentDeploysRace(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(1, "0"))
	const n = 8
	versions := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := webSpec(1, fmt.Sprint(i+1))
			spec.Roles[0].Package = s.pkg
			svc, err := s.c.Deploy(s.ctx, api.DefaultTenant, spec)
			if err != nil {
				t.Error(err)
				return
			}
			versions[i] = svc.Version
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, v := range versions {
		seen[v] = true
	}
	rec, _ := get[serviceRecord](s.store, state.KindServices, serviceKey(api.DefaultTenant, "hello"))
	if len(seen) != n || rec.Version != n+1 {
		t.Errorf("versions returned %v, stored %d; want %d distinct, the last %d", versions, rec.Version, n, n+1)
	}
}

// TestQuotaHoldsUnderConcurrentDeploys: two services of one tenant that
// each fit its quota but together do not, deployed at once: the one
// overtaken decides again, counting the other, and is refused.
func TestQuotaHoldsUnderConcurrentDeploys(t *testing.T) {
	s := newSim(t, 3)
	inst := 10
	s.withTenants(api.CreateTenant{Name: "acme", Quota: &api.Quota{Instances: &inst}})
	one, two := webSpec(6, "1"), webSpec(6, "1")
	one.Name, two.Name = "one", "two"
	var overtaking error
	s.interleave(func() { _, overtaking = s.deployAs("acme", two) })
	_, err := s.deployAs("acme", one)
	if overtaking != nil {
		t.Fatalf("the first deploy to land: %v", overtaking)
	}
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "instances 6 used + 6 asked > 10 allowed") {
		t.Errorf("the deploy overtaken: %v; want refused over the quota", err)
	}
	if u := s.c.Usage("acme"); u.Instances != 6 {
		t.Errorf("tenant uses %d instances, quota 10", u.Instances)
	}
}

// TestPortsHoldUnderConcurrentDeploys: two services that each ask for a
// port to be picked, deployed at once, get different ports.
func TestPortsHoldUnderConcurrentDeploys(t *testing.T) {
	s := newSim(t, 3)
	web := func(name string) api.ServiceSpec {
		spec := webSpec(1, "1")
		spec.Name, spec.Roles[0].Kind = name, api.KindWeb
		spec.Roles[0].Endpoints = []api.Endpoint{{Name: "http", Protocol: api.ProtocolHTTP}} // port 0: picked
		return spec
	}
	var second api.Service
	s.interleave(func() { second = s.deploy(web("two")) })
	first := s.deploy(web("one"))
	p1, p2 := first.Spec.Roles[0].Endpoints[0].Port, second.Spec.Roles[0].Endpoints[0].Port
	if p1 == 0 || p1 == p2 {
		t.Errorf("ports picked: %d and %d", p1, p2)
	}
}

// TestPassRerunKeepsDeploysWrittenMeanwhile: deploys that land while a
// pass runs, and again while it runs a second time under the lock, are
// not overwritten by what the pass finally writes: it runs a third time,
// with the API's writes of services waiting, from the last of them.
func TestPassRerunKeepsDeploysWrittenMeanwhile(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(2, "1"))
	s.settle(20, "2 running", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	s.deploy(webSpec(2, "2")) // the next pass starts its upgrade: it writes the service
	s.interleave(func() {
		s.deploy(webSpec(2, "3"))
		s.interleave(func() { s.deploy(webSpec(2, "4")) })
	})
	before := testutil.ToFloat64(s.c.figures.conflicts)
	if err := s.c.reconcile(s.ctx); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(s.c.figures.conflicts) - before; n != 2 {
		t.Errorf("the pass ran again %v times, want 2", n)
	}
	rec, _ := get[serviceRecord](s.store, state.KindServices, serviceKey(api.DefaultTenant, "hello"))
	if rec.Version != 4 || rec.Spec.Roles[0].Settings["VERSION"] != "4" || rec.Status != api.ServiceUpgrading || len(rec.Revisions) != 3 {
		t.Errorf("service after the pass: version %d, model %s, %s, %d earlier versions; want version 4, upgrading, 3 earlier",
			rec.Version, rec.Spec.Roles[0].Settings["VERSION"], rec.Status, len(rec.Revisions))
	}
}
