package daemon

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/metrics/metricstest"
	"github.com/weftcloud/weft/internal/pki"
)

// TestServerMetricsUnderTLS: a server's GET /metrics answers the operator's
// token and the servers' certificate, with the figures of its parts (a
// node's heartbeat counted), and refuses anyone else: 401 without
// credentials, 403 for a node's certificate.
func TestServerMetricsUnderTLS(t *testing.T) {
	c, creds := tlsServer(t)
	url := "https://" + c.addr
	pool := mustPool(t, creds)
	withCert := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}
	node1, err := joinAs(t, url, creds, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	asNode1 := client.New(url).WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{node1}})
	if _, err := asNode1.Heartbeat(context.Background(), "node-1", api.Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	server, err := tls.LoadX509KeyPair(filepath.Join(creds, pki.ServerFile), filepath.Join(creds, pki.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	admin := readToken(t, filepath.Join(creds, pki.AdminTokenFile))

	for _, refused := range []struct {
		who    string
		client *http.Client
		want   string
	}{
		{"anonymous", withCert(), "401"},
		{"node-1's certificate", withCert(node1), "403"},
	} {
		_, err := metricstest.TryScrape(refused.client, url+metrics.Path, "")
		if err == nil || !strings.Contains(err.Error(), refused.want) {
			t.Errorf("GET /metrics as %s: %v, want %s", refused.who, err, refused.want)
		}
	}
	for _, ok := range []struct {
		who    string
		client *http.Client
		token  string
	}{
		{"the admin token", withCert(), admin},
		{"the servers' certificate", withCert(server), ""},
	} {
		got, err := metricstest.TryScrape(ok.client, url+metrics.Path, ok.token)
		if err != nil {
			t.Errorf("GET /metrics as %s: %v", ok.who, err)
			continue
		}
		for _, name := range []string{"weft_raft_commit_index", "weft_lb_endpoints", "weft_fabric_instances", "go_goroutines"} {
			if _, found := got.Value(name); !found {
				t.Errorf("GET /metrics as %s: no %s", ok.who, name)
			}
		}
		if v, _ := got.Value("weft_fabric_lb_sync_duration_seconds"); v < 1 {
			t.Errorf("GET /metrics as %s: weft_fabric_lb_sync_duration_seconds counts %v syncs, want the load balancer synced", ok.who, v)
		}
		if v, _ := got.Value("weft_fabric_heartbeats_total", "known", "true"); v < 1 {
			t.Errorf("GET /metrics as %s: weft_fabric_heartbeats_total{known=true} = %v, want node-1's heartbeat counted", ok.who, v)
		}
	}
}

// TestPlainServerMetrics: without TLS, /metrics is the operator's as the
// rest of the API is (the admin token of the data folder), and a server
// that runs storage shows it: primary, and the requests of its system
// containers.
func TestPlainServerMetrics(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	data := t.TempDir()
	c, err := startController(context.Background(), ServerConfig{Data: data, Listen: "127.0.0.1:0", Logger: quiet,
		BlobPort: freePort(t), QueuePort: freePort(t), TablePort: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	url := "http://" + c.addr + metrics.Path
	if _, err := metricstest.TryScrape(nil, url, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("GET /metrics without the admin token: %v, want 401", err)
	}
	got := metricstest.Scrape(t, nil, url, readToken(t, filepath.Join(data, AdminTokenFile)))
	if v, _ := got.Value("weft_storage_primary"); v != 1 {
		t.Errorf("weft_storage_primary = %v, want 1", v)
	}
	if v, _ := got.Value("weft_storage_requests_total", "service", "blob"); v < 1 {
		t.Errorf("weft_storage_requests_total{service=blob} = %v, want the system containers' requests", v)
	}
}
