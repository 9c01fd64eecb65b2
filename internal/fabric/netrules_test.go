package fabric

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
)

// TestRuleChangesReachTheNetworksNodes: a node's blocking query for its
// assignments ends when a security rule of a network its instances are
// on is added or removed (nothing else changes), and the answer carries
// the network's rules by priority.
func TestRuleChangesReachTheNetworksNodes(t *testing.T) {
	s := newSim(t, 2)
	nets := networks.New(s.store, s.c)
	if _, err := nets.Create(s.ctx, api.DefaultTenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	s.deploy(onNetwork(webSpec(2, "1"), "net"))
	s.settle(20, "2 healthy", func() bool { return s.healthyCurrent("hello", "web") == 2 })
	first, err := s.c.Assignments(s.ctx, "node-1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Networks) != 1 || len(first.Networks[0].Rules) != 0 {
		t.Fatalf("node-1's networks: %+v, want net without rules", first.Networks)
	}
	// changed fails the test unless node-1's assignments changed after
	// index (a blocking query from index would end at once), and returns
	// them.
	changed := func(index uint64, what string) api.Assignments {
		t.Helper()
		if at := s.c.assignViews.view(s.c).changed("node-1"); at <= index {
			t.Fatalf("%s: node-1's assignments last changed at %d, not after %d: its blocking query would not end", what, at, index)
		}
		as, err := s.c.Assignments(s.ctx, "node-1", index, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	for _, r := range []api.NetworkRule{
		{Name: "late", Priority: 300, Action: api.RuleAllow, Protocol: "udp"},
		{Name: "web", Priority: 100, Action: api.RuleDeny, Protocol: "tcp", Port: "8080", Source: "10.0.0.0/8"},
	} {
		if _, err := nets.AddRule(s.ctx, api.DefaultTenant, "net", r); err != nil {
			t.Fatal(err)
		}
	}
	as := changed(first.Index, "rules added")
	want := []api.NetworkRule{
		{Name: "web", Priority: 100, Action: "deny", Protocol: "tcp", Port: "8080", Source: "10.0.0.0/8"},
		{Name: "late", Priority: 300, Action: "allow", Protocol: "udp", Port: "any", Source: "any"},
	}
	if len(as.Networks) != 1 {
		t.Fatalf("node-1's networks: %+v", as.Networks)
	}
	if diff := cmp.Diff(want, as.Networks[0].Rules); diff != "" {
		t.Fatalf("node-1's network's rules (-want +got):\n%s", diff)
	}
	for _, name := range []string{"web", "late"} {
		if err := nets.RemoveRule(s.ctx, api.DefaultTenant, "net", name); err != nil {
			t.Fatal(err)
		}
	}
	if as = changed(as.Index, "rules removed"); len(as.Networks) != 1 || len(as.Networks[0].Rules) != 0 {
		t.Errorf("node-1's networks after the rules were removed: %+v", as.Networks)
	}
}
