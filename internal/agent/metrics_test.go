package agent

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/process"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/metrics/metricstest"
	"github.com/weftcloud/weft/internal/pki"
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

// TestMetricsUnderTLS: over TLS the servers' certificate may scrape the
// agent's metrics without the node's token; a caller without it is
// refused at the handshake, and a server without the token is still
// refused the rest of the agent's API.
func TestMetricsUnderTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := pki.Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	creds, err := pki.LoadServer(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	_, srv := newFakeController(t, nil)
	d, err := process.New(process.Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Name: "node-1", DataDir: t.TempDir(), TLS: creds.AgentServeTLS(), Drivers: []driver.Driver{d}}, client.New(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	pool, err := pki.LoadCA(filepath.Join(dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Client{Transport: &http.Transport{TLSClientConfig: creds.ClientTLS()}}
	anonymous := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	got := metricstest.Scrape(t, server, a.Addr()+metrics.Path, "")
	if _, ok := got.Value("weft_agent_instances", "state", api.StateRunning); !ok {
		t.Error("no weft_agent_instances in the agent's metrics")
	}
	if _, err := metricstest.TryScrape(anonymous, a.Addr()+metrics.Path, ""); err == nil {
		t.Error("a caller without the servers' certificate scraped the agent")
	}
	resp, err := server.Get(a.Addr() + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/health with the servers' certificate but no token: %s, want 401", resp.Status)
	}
}
