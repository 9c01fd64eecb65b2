package api

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestNetworkRuleCheck: a valid rule comes back canonical; each bad field
// is refused as invalid, naming the field and the problem.
func TestNetworkRuleCheck(t *testing.T) {
	ok := NetworkRule{Name: "web", Priority: 100, Action: "Deny", Protocol: "TCP", Port: "8080-8090", Source: "10.0.0.0/8"}
	for _, tc := range []struct {
		in   NetworkRule
		want NetworkRule
	}{
		{ok, NetworkRule{Name: "web", Priority: 100, Action: "deny", Protocol: "tcp", Port: "8080-8090", Source: "10.0.0.0/8"}},
		{NetworkRule{Name: "all", Priority: 4096, Action: "allow"}, NetworkRule{Name: "all", Priority: 4096, Action: "allow", Protocol: "any", Port: "any", Source: "any"}},
		{NetworkRule{Name: "one", Priority: 200, Action: "allow", Protocol: "udp", Port: "53-53", Source: "10.1.2.3"},
			NetworkRule{Name: "one", Priority: 200, Action: "allow", Protocol: "udp", Port: "53", Source: "10.1.2.3/32"}},
		{NetworkRule{Name: "star", Priority: 300, Action: "deny", Protocol: "*", Port: "*", Source: "*"},
			NetworkRule{Name: "star", Priority: 300, Action: "deny", Protocol: "any", Port: "any", Source: "any"}},
	} {
		got, err := tc.in.Check()
		if err != nil || got != tc.want {
			t.Errorf("%+v: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	with := func(f func(*NetworkRule)) NetworkRule { r := ok; f(&r); return r }
	for _, tc := range []struct {
		in   NetworkRule
		want string
	}{
		{with(func(r *NetworkRule) { r.Name = "Bad_Name" }), `name: "Bad_Name" is not a rule name`},
		{with(func(r *NetworkRule) { r.Priority = 99 }), "priority: 99 is out of range: a priority is 100 to 4096"},
		{with(func(r *NetworkRule) { r.Priority = 4097 }), "priority: 4097 is out of range"},
		{with(func(r *NetworkRule) { r.Action = "reject" }), `action: "reject" is not an action (allow or deny)`},
		{with(func(r *NetworkRule) { r.Protocol = "sctp" }), `protocol: "sctp" is not a protocol (tcp, udp, icmp or any)`},
		{with(func(r *NetworkRule) { r.Port = "0" }), "port: 0 is out of range: ports are 1 to 65535"},
		{with(func(r *NetworkRule) { r.Port = "8080-65536" }), "port: 8080-65536 is out of range"},
		{with(func(r *NetworkRule) { r.Port = "9000-8000" }), "port: 9000-8000 is not a range: its first port is above its last"},
		{with(func(r *NetworkRule) { r.Port = "http" }), `port: "http" is not a port (8080) or range of ports (8080-8090)`},
		{with(func(r *NetworkRule) { r.Protocol = "icmp" }), "port: only tcp and udp rules have ports; this one's protocol is icmp"},
		{with(func(r *NetworkRule) { r.Protocol = "any" }), "port: only tcp and udp rules have ports; this one's protocol is any"},
		{with(func(r *NetworkRule) { r.Source = "10.0.0.0/33" }), `source: "10.0.0.0/33" is not an IPv4 CIDR`},
		{with(func(r *NetworkRule) { r.Source = "10.0.0.1/8" }), "source: 10.0.0.1/8 has host bits set: the range is 10.0.0.0/8"},
		{with(func(r *NetworkRule) { r.Source = "fd00::/8" }), "source: fd00::/8 is not IPv4"},
	} {
		_, err := tc.in.Check()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want invalid, %q", tc.in, err, tc.want)
		}
	}
	// Several problems are named together.
	if _, err := (NetworkRule{Name: "x", Priority: 1, Action: "drop"}).Check(); err == nil || !strings.Contains(err.Error(), "priority:") || !strings.Contains(err.Error(), "action:") {
		t.Errorf("two problems: %v", err)
	}
}

// TestNetworkRuleMatchFields: a checked rule's ports and source as the
// data plane takes them; any is 0, 0 and the zero Prefix.
func TestNetworkRuleMatchFields(t *testing.T) {
	r, _ := NetworkRule{Name: "a", Priority: 100, Action: "deny", Protocol: "tcp", Port: "8080-8090", Source: "10.0.0.0/8"}.Check()
	if from, to := r.Ports(); from != 8080 || to != 8090 {
		t.Errorf("ports %d-%d", from, to)
	}
	if r.SourcePrefix() != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("source %v", r.SourcePrefix())
	}
	r, _ = NetworkRule{Name: "a", Priority: 100, Action: "deny"}.Check()
	if from, to := r.Ports(); from != 0 || to != 0 || r.SourcePrefix().IsValid() {
		t.Errorf("any: ports %d-%d, source %v", from, to, r.SourcePrefix())
	}
}
