package agent

import (
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/metrics/metricstest"
)

// checkMetrics scrapes the agent's GET /metrics after its instance was
// started, probed, killed and restarted (TestAgentRunsHealsAdoptsAndStops),
// and checks that only the servers' token may.
func checkMetrics(t *testing.T, a *Agent) {
	t.Helper()
	url := a.Addr() + metrics.Path
	for _, token := range []string{"", "not-the-token"} {
		if _, err := metricstest.TryScrape(nil, url, token); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("GET /metrics with token %q: %v, want 401", token, err)
		}
	}
	got := metricstest.Scrape(t, nil, url, a.apiToken)
	for _, w := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"weft_agent_instance_restarts_total", []string{"runtime", api.RuntimeProcess}, 1},
		{"weft_agent_driver_start_duration_seconds", []string{"runtime", api.RuntimeProcess, "result", "ok"}, 2},
		{"weft_agent_probe_duration_seconds", []string{"result", "ok"}, 1},
		{"weft_agent_instances", []string{"state", api.StateRunning}, 1},
	} {
		if v, ok := got.Value(w.name, w.labels...); !ok || v < w.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", w.name, w.labels, v, ok, w.min)
		}
	}
}
