package fabric

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/state"
)

// extensionStatuses is what a sim node reports of an instance's
// extensions: success, or transitioning for s.slowExtension.
func (s *sim) extensionStatuses(refs []api.ExtensionRef) []api.ExtensionStatus {
	var out []api.ExtensionStatus
	for _, r := range refs {
		st := api.ExtensionStatus{Name: r.Name, Version: r.Version, Status: api.ExtensionSuccess}
		if r.Name+" "+r.Version == s.slowExtension {
			st.Status = api.ExtensionTransitioning
		}
		out = append(out, st)
	}
	return out
}

// publish records an extension version in the default tenant, as
// extensions.Store.Publish does once it has checked the archive.
func (s *sim) publish(name, version string) {
	s.t.Helper()
	ext := api.Extension{ExtensionManifest: api.ExtensionManifest{Name: name, Version: version,
		Handlers: api.ExtensionHandlers{Enable: []string{"./enable"}},
		Settings: api.ExtensionSchema{Public: map[string]api.SettingSchema{"greeting": {Type: "string"}},
			Protected: map[string]api.SettingSchema{"token": {Type: "string"}}}},
		Tenant: api.DefaultTenant, Package: s.pkg}
	data, _ := json.Marshal(ext)
	if _, err := s.store.Apply(s.ctx, []state.Op{{Kind: state.KindExtensions, Key: extensions.Key(api.DefaultTenant, name, version), Value: data}}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sim) extensionVersions() map[int]string {
	out := map[int]string{}
	for _, in := range s.records("hello") {
		v := "-"
		if len(in.Spec.Extensions) > 0 {
			v = in.Spec.Extensions[0].Version
		}
		out[in.UpdateDomain] = v
	}
	return out
}

// TestExtensionsChangeInPlaceAndVersionsRollByUpdateDomain: a role's
// extensions reach its running instances without replacing them; a
// settings change or a removal reaches all at once, a new version one
// update domain at a time, each waiting for the one before to settle.
func TestExtensionsChangeInPlaceAndVersionsRollByUpdateDomain(t *testing.T) {
	s := newSim(t, 3)
	s.publish("hello", "1.0")
	s.publish("hello", "2.0")
	spec := webSpec(3, "1")
	spec.Roles[0].Extensions = []api.ExtensionRef{{Name: "hello", Version: "1.0"}}
	s.deploy(spec)
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	ids := map[string]bool{}
	for _, in := range s.records("hello") {
		ids[in.ID] = true
		if len(in.Spec.Extensions) != 1 || in.Spec.Extensions[0].Package != s.pkg {
			t.Fatalf("instance %s has extensions %+v, want hello pinned to its package", in.ID, in.Spec.Extensions)
		}
	}
	same := func(what string) {
		t.Helper()
		for _, in := range s.records("hello") {
			if !ids[in.ID] || in.Scheduled != nil {
				t.Fatalf("%s: instance %s (scheduled %+v) is not one of the first three: extensions must not replace instances", what, in.ID, in.Scheduled)
			}
		}
	}

	spec.Roles[0].Extensions[0].Settings = map[string]any{"greeting": "hi"}
	spec.Roles[0].Package = s.pkg
	plan, err := s.c.Plan(s.ctx, api.DefaultTenant, spec)
	if err != nil {
		t.Fatal(err)
	}
	if rp := plan.Roles[0]; rp.Action != api.PlanUpdate || len(rp.Restarts) != 0 || len(rp.Changes) != 1 || rp.Changes[0].Field != "extensions[0].settings" {
		t.Errorf("the plan of a settings change: %+v, want an update naming extensions[0].settings that replaces nothing", rp)
	}
	s.deploy(spec)
	s.step()
	for _, in := range s.records("hello") {
		if in.Spec.Extensions[0].Settings["greeting"] != "hi" {
			t.Errorf("instance %s (update domain %d) did not get the new settings in one pass", in.ID, in.UpdateDomain)
		}
	}
	same("settings changed")

	s.slowExtension = "hello 2.0"
	spec.Roles[0].Extensions[0].Version = "2.0"
	s.deploy(spec)
	for range 5 {
		s.step()
	}
	if got := s.extensionVersions(); got[0] != "2.0" || got[1] != "1.0" || got[2] != "1.0" {
		t.Fatalf("while update domain 0 runs its handlers, versions by domain are %v: want 2.0 in domain 0 only", got)
	}
	s.slowExtension = ""
	s.settle(10, "2.0 everywhere", func() bool {
		got := s.extensionVersions()
		return got[0] == "2.0" && got[1] == "2.0" && got[2] == "2.0"
	})
	same("version rolled out")

	spec.Roles[0].Extensions = nil
	s.deploy(spec)
	s.step()
	if got := s.extensionVersions(); got[0] != "-" || got[1] != "-" || got[2] != "-" {
		t.Errorf("after removing the extension, versions by domain are %v", got)
	}
	same("extension removed")
}

func TestDeployRefusesUnknownExtensionsAndBadSettings(t *testing.T) {
	s := newSim(t, 1)
	s.publish("hello", "1.0")
	for _, tc := range []struct {
		ref  api.ExtensionRef
		want string
	}{
		{api.ExtensionRef{Name: "nope"}, "roles[0].extensions[0]: no extension named nope"},
		{api.ExtensionRef{Name: "hello", Version: "3.0"}, "roles[0].extensions[0]: no extension hello version 3.0"},
		{api.ExtensionRef{Name: "hello", Settings: map[string]any{"greeting": 5.0}}, "roles[0].extensions[0].settings.greeting: is a number; the extension wants a string"},
		{api.ExtensionRef{Name: "hello", ProtectedSettings: map[string]any{"token": "x"}}, "roles[0].extensions[0].protectedSettings: this server has no key"},
	} {
		spec := webSpec(1, "1")
		spec.Roles[0].Package = s.pkg
		spec.Roles[0].Extensions = []api.ExtensionRef{tc.ref}
		_, err := s.c.Deploy(s.ctx, api.DefaultTenant, spec)
		if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("deploy with %+v: %v, want invalid naming %q", tc.ref, err, tc.want)
		}
	}
	if svcs := s.c.Services(s.ctx, api.DefaultTenant); len(svcs) != 0 {
		t.Errorf("refused deploys stored %d services", len(svcs))
	}
}

// TestProtectedSettingsAreSealedAndOpenOnlyForTheNode: the stored model
// and the API's service hold the sealed text only; the assignment of the
// node that runs the instance has them open.
func TestProtectedSettingsAreSealedAndOpenOnlyForTheNode(t *testing.T) {
	s := newSim(t, 1)
	key, err := extensions.ServerKey("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if s.c.cfg.Sealer, err = extensions.NewSealer(key); err != nil {
		t.Fatal(err)
	}
	s.publish("hello", "1.0")
	spec := webSpec(1, "1")
	spec.Roles[0].Extensions = []api.ExtensionRef{{Name: "hello", ProtectedSettings: map[string]any{"token": "s3cret"}}}
	s.deploy(spec)
	s.settle(20, "healthy", func() bool { return s.healthyCurrent("hello", "web") == 1 })
	for _, e := range append(s.store.List(state.KindServices, ""), s.store.List(state.KindInstances, "")...) {
		if strings.Contains(string(e.Value), "s3cret") {
			t.Errorf("the state's %s holds the protected setting open: %s", e.Key, e.Value)
		}
	}
	svc, err := s.c.Service(s.ctx, api.DefaultTenant, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := json.Marshal(svc); strings.Contains(string(data), "s3cret") {
		t.Errorf("the service as the API shows it holds the protected setting: %s", data)
	}
	in := s.records("hello")[0]
	as, _ := s.c.Assignments(s.ctx, in.Node, 0, 0)
	if got := as.Instances[0].Role.Extensions[0]; got.ProtectedSettings["token"] != "s3cret" || got.Sealed != "" {
		t.Errorf("the node's assignment has %+v, want the protected settings open", got)
	}
	// The same model again is no change: sealing is deterministic.
	before := svc.Version
	if again := s.deploy(spec); again.Version != before {
		t.Errorf("deploying the same protected settings again made version %d of %d", again.Version, before)
	}
}
