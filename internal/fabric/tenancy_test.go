package fabric

import (
	"errors"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/tenants"
)

func (s *sim) withTenants(list ...api.CreateTenant) {
	s.t.Helper()
	s.c.cfg.Tenants = tenants.New(s.store, api.Quota{})
	for _, t := range list {
		if _, err := s.c.cfg.Tenants.Create(s.ctx, t); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *sim) deployAs(tenant string, spec api.ServiceSpec) (api.Service, error) {
	for i := range spec.Roles {
		spec.Roles[i].Package = s.pkg
	}
	return s.c.Deploy(s.ctx, tenant, spec)
}

// TestQuota: deploys, scale-ups and upgrades over a tenant's quota are
// refused before anything is written, saying what is used, asked and
// allowed; scaling down is never refused.
func TestQuota(t *testing.T) {
	s := newSim(t, 3)
	cpu, mem, inst := 1.5, api.Bytes(256<<20), 3
	s.withTenants(api.CreateTenant{Name: "acme", Quota: &api.Quota{CPU: &cpu, Memory: &mem, Instances: &inst}}, api.CreateTenant{Name: "globex"})
	if _, err := s.deployAs("acme", webSpec(3, "1")); err != nil {
		t.Fatal(err)
	}
	before := s.store.Index()
	_, err := s.c.Scale(s.ctx, "acme", "hello", "web", 4)
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "quota exceeded: cpu 1.5 used + 0.5 asked > 1.5 allowed; instances 3 used + 1 asked > 3 allowed") {
		t.Errorf("scale over quota: %v", err)
	}
	bigger := webSpec(3, "2")
	bigger.Roles[0].Size.Memory = 96 << 20
	if _, err := s.deployAs("acme", bigger); err == nil || !strings.Contains(err.Error(), "memory 192Mi used + 96Mi asked > 256Mi allowed") {
		t.Errorf("an upgrade whose instances would not fit beside the old ones: %v", err)
	}
	if _, err := s.deployAs("acme", api.ServiceSpec{Name: "other", Roles: webSpec(1, "1").Roles}); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("a second service over quota: %v", err)
	}
	if s.store.Index() != before {
		t.Error("a refused request wrote to the state")
	}
	// The same name in another tenant is another service.
	if _, err := s.deployAs("globex", webSpec(3, "1")); err != nil {
		t.Errorf("globex's hello beside acme's: %v", err)
	}
	s.settle(20, "6 running", func() bool { return len(s.c.Instances(s.ctx, api.AllTenants, "")) == 6 })
	if n := len(s.c.Instances(s.ctx, "acme", "hello")); n != 3 {
		t.Errorf("acme has %d instances, want 3", n)
	}
	// Lowered below use: scaling down still works, up does not.
	one := 1
	if _, err := s.c.cfg.Tenants.SetQuota(s.ctx, "acme", api.SetQuota{Quota: api.Quota{Instances: &one}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Scale(s.ctx, "acme", "hello", "web", 2); err != nil {
		t.Errorf("scaling down over a lowered quota: %v", err)
	}
	if u := s.c.Usage("acme"); u.Instances != 2 || u.CPU != 1 || u.Memory != 128<<20 {
		t.Errorf("acme's usage: %+v", u)
	}
	if _, err := s.deployAs("nobody", webSpec(1, "1")); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("deploying in a tenant that does not exist: %v", err)
	}
}

func webRole(port int) api.ServiceSpec {
	spec := webSpec(1, "1")
	spec.Roles[0].Kind = api.KindWeb
	spec.Roles[0].Endpoints = []api.Endpoint{{Name: "http", Protocol: api.ProtocolHTTP, Port: port}}
	return spec
}

// TestTenantPorts: a tenant's endpoint asking for port 0 gets a free port
// of its own range, or of the cluster's tenant range, and keeps it across
// upgrades; a tenant may not take a port outside its range, so no tenant
// takes a port another was given. The default tenant (the operator) picks
// any port.
func TestTenantPorts(t *testing.T) {
	s := newSim(t, 1)
	s.withTenants(api.CreateTenant{Name: "acme"}, api.CreateTenant{Name: "globex", Ports: api.PortRange{From: 30000, To: 30001}})
	port := func(svc api.Service) int { return svc.Spec.Roles[0].Endpoints[0].Port }
	svc, err := s.deployAs("acme", webRole(0))
	if err != nil {
		t.Fatal(err)
	}
	if port(svc) != 30002 {
		t.Errorf("acme's picked port %d, want 30002 (the first of the cluster's range outside globex's)", port(svc))
	}
	again := webRole(0)
	again.Roles[0].Settings = map[string]string{"VERSION": "2"}
	if svc, err = s.deployAs("acme", again); err != nil || port(svc) != 30002 {
		t.Errorf("acme's port after an upgrade: %d, %v", port(svc), err)
	}
	if _, err := s.deployAs("acme", api.ServiceSpec{Name: "grab", Roles: webRole(30000).Roles}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("acme taking globex's port: %v", err)
	}
	if svc, err := s.deployAs("globex", webRole(30001)); err != nil || port(svc) != 30001 {
		t.Errorf("globex publishing its own port: %v", err)
	}
	if svc, err := s.deployAs(api.DefaultTenant, webRole(8080)); err != nil || port(svc) != 8080 {
		t.Errorf("the operator publishing 8080: %v", err)
	}
	if _, err := s.deployAs("globex", api.ServiceSpec{Name: "two", Roles: webRole(30002).Roles}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("globex outside its range: %v", err)
	}
}

// TestKeysMoveUnderTheDefaultTenant: a state written before tenancy (keys
// by name alone) is moved under the default tenant when the controller
// starts, and its objects are found there.
func TestKeysMoveUnderTheDefaultTenant(t *testing.T) {
	s := newSim(t, 1)
	s.deploy(webSpec(1, "1"))
	s.settle(10, "running", func() bool { return s.healthyCurrent("hello", "web") == 1 })
	var ops []state.Op
	for _, kind := range []string{state.KindServices, state.KindInstances} {
		for _, e := range s.store.List(kind, "") {
			old := strings.TrimPrefix(e.Key, api.DefaultTenant+"/")
			ops = append(ops, del(kind, e.Key), state.Op{Kind: kind, Key: old, Value: e.Value})
		}
	}
	if _, err := s.store.Apply(s.ctx, ops); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Service(s.ctx, api.DefaultTenant, "hello"); err == nil {
		t.Fatal("the old keys were found without moving them")
	}
	if err := s.c.migrateKeys(s.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Service(s.ctx, api.DefaultTenant, "hello"); err != nil {
		t.Error(err)
	}
	if n := len(s.c.Instances(s.ctx, api.DefaultTenant, "hello")); n != 1 {
		t.Errorf("%d instances after the move, want 1", n)
	}
}
