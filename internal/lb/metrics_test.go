package lb

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWriteMetrics(t *testing.T) {
	b := newBalancer(t)
	be := newBackend(t, "i-1")
	port := freePort(t)
	key := `odd"key`
	if err := b.Update([]Endpoint{{Key: key, Port: port, Backends: []Backend{be.Backend, {ID: "i-0", Addr: deadAddr(t)}}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	}
	l := fmt.Sprintf(`endpoint="odd\"key",port="%d",protocol="http"`, port)
	want := strings.Join([]string{
		"# HELP weft_lb_requests_total Requests (HTTP) or connections (TCP) accepted.",
		"# TYPE weft_lb_requests_total counter",
		"weft_lb_requests_total{" + l + "} 2",
		"# HELP weft_lb_failures_total Requests answered 502 or 503 by the balancer, or connections it could not place.",
		"# TYPE weft_lb_failures_total counter",
		"weft_lb_failures_total{" + l + "} 0",
		"# HELP weft_lb_backend_active Requests or connections in flight to a backend.",
		"# TYPE weft_lb_backend_active gauge",
		"weft_lb_backend_active{" + l + `,backend="i-0"} 0`,
		"weft_lb_backend_active{" + l + `,backend="i-1"} 0`,
		"",
	}, "\n")
	// The balancer counts a request out of flight just after its client
	// has the whole answer: give it a moment.
	var got string
	for deadline := time.Now().Add(2 * time.Second); got != want && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var sb strings.Builder
		if err := b.WriteMetrics(&sb); err != nil {
			t.Fatal(err)
		}
		got = sb.String()
	}
	if got != want {
		t.Errorf("metrics:\n%s\nwant:\n%s", got, want)
	}
}
