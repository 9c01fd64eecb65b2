package networks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// TestRules: rules are kept by priority, canonical; a rule whose name or
// priority is taken, or that is invalid, stores nothing; another tenant's
// network of the same name has rules of its own; removing the last rule
// leaves none; a deleted network takes its rules with it, so a network
// made again under its name starts with none.
func TestRules(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	m := New(st, users{})
	if _, err := m.AddRule(ctx, api.DefaultTenant, "net", api.NetworkRule{Name: "a", Priority: 100, Action: "deny"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("a rule for a network that does not exist: %v", err)
	}
	if _, err := m.Create(ctx, api.DefaultTenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	add := func(r api.NetworkRule) error {
		_, err := m.AddRule(ctx, api.DefaultTenant, "net", r)
		return err
	}
	for _, r := range []api.NetworkRule{
		{Name: "late", Priority: 300, Action: "allow", Protocol: "udp"},
		{Name: "web", Priority: 100, Action: "deny", Protocol: "tcp", Port: "8080", Source: "10.0.0.0/8"},
		{Name: "mid", Priority: 200, Action: "allow", Protocol: "icmp"},
	} {
		if err := add(r); err != nil {
			t.Fatal(err)
		}
	}
	want := []api.NetworkRule{
		{Name: "web", Priority: 100, Action: "deny", Protocol: "tcp", Port: "8080", Source: "10.0.0.0/8"},
		{Name: "mid", Priority: 200, Action: "allow", Protocol: "icmp", Port: "any", Source: "any"},
		{Name: "late", Priority: 300, Action: "allow", Protocol: "udp", Port: "any", Source: "any"},
	}
	got, err := m.Rules(api.DefaultTenant, "net")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	_, rev := Rules(st, api.DefaultTenant, "net")
	for _, tc := range []struct {
		r    api.NetworkRule
		err  error
		want string
	}{
		{api.NetworkRule{Name: "web", Priority: 400, Action: "deny"}, api.ErrConflict, "network net has a rule named web"},
		{api.NetworkRule{Name: "other", Priority: 200, Action: "deny"}, api.ErrConflict, "rule mid of network net has priority 200"},
		{api.NetworkRule{Name: "bad", Priority: 500, Action: "deny", Source: "10.0.0.0/40"}, api.ErrInvalid, "source:"},
	} {
		if err := add(tc.r); !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %v, %q", tc.r, err, tc.err, tc.want)
		}
	}
	if _, after := Rules(st, api.DefaultTenant, "net"); after != rev {
		t.Errorf("a refused rule wrote the rules (revision %d, was %d)", after, rev)
	}

	// Another tenant's network of the same name.
	if _, err := st.Apply(ctx, []state.Op{{Kind: "tenants", Key: "acme", Value: []byte(`{"name":"acme"}`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, "acme", api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Rules("acme", "net"); err != nil || len(got) != 0 {
		t.Errorf("acme's network of the same name: %+v, %v; want no rules", got, err)
	}
	if err := m.RemoveRule(ctx, "acme", "net", "web"); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "network net has no rule named web") {
		t.Errorf("removing the default tenant's rule as acme: %v", err)
	}

	for _, name := range []string{"mid", "web", "late"} {
		if err := m.RemoveRule(ctx, api.DefaultTenant, "net", name); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := st.Get(KindRules, Key(api.DefaultTenant, "net")); ok {
		t.Error("no rules left, but their entry stays")
	}
	if err := add(api.NetworkRule{Name: "web", Priority: 100, Action: "deny"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, api.DefaultTenant, "net"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rules(api.DefaultTenant, "net"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("rules of a deleted network: %v", err)
	}
	if _, err := m.Create(ctx, api.DefaultTenant, api.CreateNetwork{Name: "net", CIDR: "10.30.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Rules(api.DefaultTenant, "net"); len(got) != 0 {
		t.Errorf("a network made again under a deleted one's name has its rules: %+v", got)
	}
}
