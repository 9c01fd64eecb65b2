package cli

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/metrics"
)

// TestTop reads a real registry's /metrics, with a real load balancer
// that passed one request, and prints its figures.
func TestTop(t *testing.T) {
	b := lb.New("127.0.0.1", nil)
	t.Cleanup(func() { b.Close() })
	reg := metrics.NewRegistry()
	if err := b.Register(reg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, metrics.Handler(reg))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(backend.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if err := b.Update([]lb.Endpoint{{Key: "hello/web/http", Port: port, Backends: []lb.Backend{{ID: "i-1", Addr: strings.TrimPrefix(backend.URL, "http://")}}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	out, errOut, code := weft(t, srv.URL, "top", "--once", "--token", "x")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"CONTROLLER", "RAFT", "LOAD BALANCER", "STORAGE"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s section:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^hello/web/http\s+1\s+0\s+\d+\s+\S+`).MatchString(out) {
		t.Errorf("no line for the endpoint with its 1 request and 0 failures:\n%s", out)
	}
	if _, _, code := weft(t, srv.URL, "top", "--interval", "0s"); code == 0 {
		t.Error("--interval 0s accepted")
	}
}
