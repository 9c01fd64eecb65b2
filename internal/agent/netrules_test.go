package agent

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/overlay"
)

// TestNetworkRulesDesired: a network's security rules reach the
// overlay's state in the controller's order (by priority), any protocol,
// port and source as the overlay's zero values; a network with a rule the
// agent cannot read is left out (not carried without it), not the others.
func TestNetworkRulesDesired(t *testing.T) {
	p := newNetPlane(slog.New(slog.DiscardHandler), "n1", "192.168.0.1", "/var/lib/weft")
	net := func(name string, vni int, rules ...api.NetworkRule) api.NodeNetwork {
		return api.NodeNetwork{Tenant: "acme", Network: name, VNI: vni, CIDR: "10.20.0.0/16",
			Subnets: []api.Subnet{{Name: "default", CIDR: "10.20.0.0/16"}}, Rules: rules}
	}
	st, _, _, _ := p.desired([]api.NodeNetwork{
		net("net", 7,
			api.NetworkRule{Name: "web", Priority: 100, Action: "deny", Protocol: "tcp", Port: "8080-8090", Source: "10.0.0.0/8"},
			api.NetworkRule{Name: "dns", Priority: 200, Action: "allow", Protocol: "udp", Port: "53", Source: "any"},
			api.NetworkRule{Name: "ping", Priority: 300, Action: "allow", Protocol: "icmp", Port: "any", Source: "10.20.0.5/32"},
			api.NetworkRule{Name: "rest", Priority: 4096, Action: "deny", Protocol: "any", Port: "any", Source: "any"}),
		net("future", 8, api.NetworkRule{Name: "odd", Priority: 100, Action: "reject"}),
	})
	want := []overlay.Rule{
		{Action: overlay.Deny, Protocol: "tcp", FromPort: 8080, ToPort: 8090, Source: netip.MustParsePrefix("10.0.0.0/8")},
		{Action: overlay.Allow, Protocol: "udp", FromPort: 53, ToPort: 53},
		{Action: overlay.Allow, Protocol: "icmp", Source: netip.MustParsePrefix("10.20.0.5/32")},
		{Action: overlay.Deny},
	}
	if len(st.Networks) != 1 || st.Networks[0].VNI != 7 {
		t.Fatalf("networks carried: %+v, want only VNI 7", st.Networks)
	}
	if diff := cmp.Diff(want, st.Networks[0].Rules, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("overlay rules (-want +got):\n%s", diff)
	}
}

// TestNetworkRulesMetric: weft_agent_network_rules counts the rules last
// programmed on the node, per network.
func TestNetworkRulesMetric(t *testing.T) {
	p := newNetPlane(slog.New(slog.DiscardHandler), "n1", "192.168.0.1", "/var/lib/weft")
	p.applied = overlay.State{Networks: []overlay.Network{{VNI: 7, Rules: []overlay.Rule{{Action: overlay.Deny}, {Action: overlay.Allow}}}, {VNI: 9}}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rulesCollector{p})
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if want := map[string]float64{"weft_agent_network_rules/7": 2, "weft_agent_network_rules/9": 0}; !cmp.Equal(want, got) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}
