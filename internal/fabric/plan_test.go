package fabric

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
)

// TestScaleKeepsTheVersion: a scale, and a deploy that changes nothing but
// instance counts, keep the service's version and leave nothing to roll
// back to; a change of the template makes the next version.
func TestScaleKeepsTheVersion(t *testing.T) {
	s := newSim(t, 3)
	s.deploy(webSpec(3, "1"))
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	svc, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 5)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Version != 1 {
		t.Errorf("version %d after a scale, want 1", svc.Version)
	}
	if svc := s.deploy(webSpec(4, "1")); svc.Version != 1 || svc.Spec.Roles[0].Instances != 4 {
		t.Errorf("a deploy changing only the count: version %d, %d instances; want version 1, 4 instances", svc.Version, svc.Spec.Roles[0].Instances)
	}
	if _, err := s.c.Rollback(s.ctx, api.DefaultTenant, "hello"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("rollback after scales only: %v, want a conflict (no earlier version)", err)
	}
	s.settle(20, "4 healthy", func() bool { return s.healthyCurrent("hello", "web") == 4 })
	for _, in := range s.records("hello") {
		if in.Version != 1 {
			t.Errorf("instance %s has version %d, want 1", in.ID, in.Version)
		}
	}
	if svc := s.deploy(webSpec(4, "2")); svc.Version != 2 {
		t.Errorf("a deploy changing the template: version %d, want 2", svc.Version)
	}
}

// TestPlanSaysWhatADeployWouldDo: after weft scale, the plan of the
// original file names the count going back, the changed setting, the
// instances that stop and those the upgrade replaces by update domain,
// writes nothing, and refuses what Deploy refuses. The rollout then
// counts the domains that hold instances.
func TestPlanSaysWhatADeployWouldDo(t *testing.T) {
	s := newSim(t, 3)
	spec := func(n int, version string) api.ServiceSpec {
		sp := webSpec(n, version)
		sp.UpgradeDomains = 5
		sp.Roles[0].Package = s.pkg
		return sp
	}
	s.deploy(spec(3, "1"))
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 5); err != nil {
		t.Fatal(err)
	}
	s.settle(20, "5 healthy", func() bool { return s.healthyCurrent("hello", "web") == 5 })
	slot := map[int]string{}
	for _, in := range s.records("hello") {
		slot[in.Slot] = in.ID
	}

	before := s.store.Index()
	next := spec(3, "2")
	next.Roles = append(next.Roles, api.RoleSpec{Name: "worker", Kind: api.KindWorker, Runtime: api.RuntimeProcess,
		Package: s.pkg, Command: []string{"./work"}, Instances: 1, Size: api.Size{CPU: 0.1, Memory: 16 << 20}})
	plan, err := s.c.Plan(s.ctx, api.DefaultTenant, next)
	if err != nil {
		t.Fatal(err)
	}
	want := api.Plan{Service: "hello", Version: 1, NewVersion: 2, Domains: 3, Roles: []api.RolePlan{
		{Name: "web", Action: api.PlanUpdate, From: 5, To: 3,
			Changes: []api.FieldChange{{Field: "settings.VERSION", Old: `"1"`, New: `"2"`}},
			Restarts: []api.DomainRestarts{
				{Domain: 0, Instances: []string{slot[0]}},
				{Domain: 1, Instances: []string{slot[1]}},
				{Domain: 2, Instances: []string{slot[2]}},
			},
			Stops: []string{slot[3], slot[4]}},
		{Name: "worker", Action: api.PlanCreate, To: 1},
	}}
	if diff := cmp.Diff(want, plan); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if after := s.store.Index(); after != before {
		t.Errorf("the plan wrote to the store (index %d -> %d)", before, after)
	}

	// Only the count: a scale, no new version, nothing restarts.
	plan, err = s.c.Plan(s.ctx, api.DefaultTenant, spec(3, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if r := plan.Roles[0]; plan.NewVersion != 1 || r.Action != api.PlanScale || len(r.Restarts) != 0 || len(r.Stops) != 2 {
		t.Errorf("count-only plan: %+v", plan)
	}
	// A new service: every role is created.
	other := spec(2, "1")
	other.Name = "other"
	if plan, err := s.c.Plan(s.ctx, api.DefaultTenant, other); err != nil || !plan.Create || plan.NewVersion != 1 || plan.Roles[0].Action != api.PlanCreate {
		t.Errorf("plan of a new service: %+v, %v", plan, err)
	}
	// Refused as a deploy is, with the same error.
	bad := spec(3, "1")
	bad.Roles[0].Instances = -1
	_, planErr := s.c.Plan(s.ctx, api.DefaultTenant, bad)
	_, deployErr := s.c.Deploy(s.ctx, api.DefaultTenant, bad)
	if planErr == nil || deployErr == nil || planErr.Error() != deployErr.Error() {
		t.Errorf("a bad model: plan says %v, deploy says %v", planErr, deployErr)
	}

	// Deploy what was planned; the rollout is over the 3 domains that hold
	// instances, not the 5 the model allows.
	if svc := s.deploy(next); svc.Version != 2 {
		t.Fatalf("deployed version %d, want 2", svc.Version)
	}
	s.settle(200, "upgraded", func() bool {
		svc, _ := s.c.Service(s.ctx, api.DefaultTenant, "hello")
		if u := svc.Upgrade; u != nil && u.Domains != 3 {
			t.Fatalf("upgrade over %d domains, want 3", u.Domains)
		}
		return svc.Status == api.ServiceStable && s.healthyCurrent("hello", "web") == 3
	})
	events, _ := s.c.events.Since(0)
	var rolled []string
	for _, e := range events {
		if e.Type == "upgrade.domain" || e.Type == "upgrade.started" {
			rolled = append(rolled, e.Message)
		}
	}
	wantRolled := []string{
		"service hello: rolling upgrade to version 2 over 3 update domains",
		"service hello: upgrading update domain 1 of 3",
		"service hello: upgrading update domain 2 of 3",
		"service hello: upgrading update domain 3 of 3",
	}
	if diff := cmp.Diff(wantRolled, rolled); diff != "" {
		t.Errorf("rollout events (-want +got):\n%s", diff)
	}

	// The plan of a model without the worker stops its instance.
	s.settle(20, "worker healthy", func() bool { return s.healthyCurrent("hello", "worker") == 1 })
	plan, err = s.c.Plan(s.ctx, api.DefaultTenant, spec(3, "2"))
	if err != nil {
		t.Fatal(err)
	}
	if r := plan.Roles[len(plan.Roles)-1]; r.Name != "worker" || r.Action != api.PlanDestroy || r.From != 1 || len(r.Stops) != 1 || !strings.HasPrefix(r.Stops[0], "hello-worker-0-") {
		t.Errorf("plan without the worker: %+v", plan.Roles)
	}
}
