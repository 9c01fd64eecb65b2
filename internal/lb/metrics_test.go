package lb

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/metrics/metricstest"
)

// TestMetrics scrapes the balancer's figures after real requests through
// it: one answered by a live backend, one that finds only a dead one.
func TestMetrics(t *testing.T) {
	b := newBalancer(t)
	reg := metrics.NewRegistry()
	if err := b.Register(reg); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()

	be := newBackend(t, "i-1")
	port, deadPort := freePort(t), freePort(t)
	key := `odd"key`
	if err := b.Update([]Endpoint{
		{Key: key, Port: port, Backends: []Backend{be.Backend}},
		{Key: "dead", Port: deadPort, Backends: []Backend{{ID: "i-0", Addr: deadAddr(t)}}},
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	}
	if code, _ := get(t, fmt.Sprintf("http://127.0.0.1:%d/", deadPort)); code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
		t.Fatalf("a request to a dead backend: %d, want 502 or 503", code)
	}
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"weft_lb_requests_total", []string{"endpoint", key, "port", strconv.Itoa(port), "protocol", "http"}, 2},
		{"weft_lb_failures_total", []string{"endpoint", key}, 0},
		{"weft_lb_requests_total", []string{"endpoint", "dead"}, 1},
		{"weft_lb_failures_total", []string{"endpoint", "dead"}, 1},
		{"weft_lb_request_duration_seconds", []string{"endpoint", key}, 2},
		{"weft_lb_backend_in_flight", []string{"endpoint", key, "backend", "i-1"}, 0},
		{"weft_lb_endpoints", nil, 2},
	}
	// The balancer counts a request out of flight, and observes its
	// latency, just after its client has the whole answer: give it a
	// moment.
	deadline := time.Now().Add(2 * time.Second)
	for _, w := range want {
		for {
			got, ok := metricstest.Scrape(t, nil, srv.URL+metrics.Path, "").Value(w.name, w.labels...)
			if ok && got == w.value {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
