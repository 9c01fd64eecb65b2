package agent

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/overlay"
)

// overlayRules turns a network's security rules (by priority, as the
// controller checked and sorted them) into the overlay's, in the same
// order: the first that matches decides. A rule the agent cannot read
// (from a newer controller) fails the network rather than being left
// out, which could let through what it denies.
func overlayRules(rules []api.NetworkRule) ([]overlay.Rule, error) {
	var out []overlay.Rule
	for _, r := range rules {
		checked, err := r.Check()
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		o := overlay.Rule{Action: overlay.Action(checked.Action), Source: checked.SourcePrefix()}
		if checked.Protocol != api.RuleAny {
			o.Protocol = checked.Protocol
		}
		o.FromPort, o.ToPort = checked.Ports()
		out = append(out, o)
	}
	return out, nil
}

var networkRulesDesc = prometheus.NewDesc("weft_agent_network_rules",
	"Security rules programmed on this node, by network (VNI), as of the last programming of its virtual networks.", []string{"vni"}, nil)

// rulesCollector reports the rules the node last programmed.
type rulesCollector struct{ p *netPlane }

var _ prometheus.Collector = rulesCollector{}

func (rulesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- networkRulesDesc }

func (c rulesCollector) Collect(ch chan<- prometheus.Metric) {
	c.p.mu.Lock()
	nets := c.p.applied.Networks
	c.p.mu.Unlock()
	for _, n := range nets {
		ch <- prometheus.MustNewConstMetric(networkRulesDesc, prometheus.GaugeValue, float64(len(n.Rules)), strconv.FormatUint(uint64(n.VNI), 10))
	}
}
