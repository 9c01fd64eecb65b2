package lb

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/loadgen"
)

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// backend is a real HTTP server that answers with its name.
func backend(t testing.TB, name string) (Backend, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := r.URL.Query().Get("sleep"); d != "" {
			dur, _ := time.ParseDuration(d)
			time.Sleep(dur)
		}
		fmt.Fprint(w, name)
	}))
	t.Cleanup(srv.Close)
	return Backend{ID: name, Addr: strings.TrimPrefix(srv.URL, "http://")}, srv
}

func newBalancer(t testing.TB) *Balancer {
	b := New("127.0.0.1", nil)
	t.Cleanup(func() { b.Close() })
	return b
}

func fetch(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestBalancesAcrossBackends(t *testing.T) {
	b := newBalancer(t)
	port := freePort(t)
	var bes []Backend
	for _, n := range []string{"a", "b", "c"} {
		be, _ := backend(t, n)
		bes = append(bes, be)
	}
	if err := b.Update([]Endpoint{{Key: "s/web/http", Port: port, Backends: bes}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		code, body := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		seen[body]++
	}
	if len(seen) != 3 {
		t.Errorf("answers came from %v, want all three backends", seen)
	}
}

func TestDeadBackendIsRetriedElsewhere(t *testing.T) {
	b := newBalancer(t)
	port := freePort(t)
	good, _ := backend(t, "good")
	dead := Backend{ID: "dead", Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))} // nothing listens
	if err := b.Update([]Endpoint{{Port: port, Backends: []Backend{dead, good}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if code, body := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != 200 || body != "good" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
}

func TestNoBackendIs503(t *testing.T) {
	b := newBalancer(t)
	port := freePort(t)
	if err := b.Update([]Endpoint{{Key: "s/web/http", Port: port}}); err != nil {
		t.Fatal(err)
	}
	if code, body := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); code != http.StatusServiceUnavailable || !strings.Contains(body, "no healthy instance") {
		t.Errorf("got %d %q, want 503", code, body)
	}
}

func TestRemovedPortIsFreed(t *testing.T) {
	b := newBalancer(t)
	port := freePort(t)
	be, _ := backend(t, "a")
	if err := b.Update([]Endpoint{{Port: port, Backends: []Backend{be}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port still held after the endpoint was removed: %v", err)
	}
	ln.Close()
	// A port someone else holds is reported, and the other endpoints still apply.
	taken, _ := net.Listen("tcp", "127.0.0.1:0")
	defer taken.Close()
	other := freePort(t)
	err = b.Update([]Endpoint{
		{Key: "x", Port: taken.Addr().(*net.TCPAddr).Port, Backends: []Backend{be}},
		{Key: "y", Port: other, Backends: []Backend{be}},
	})
	if err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("bind failure not reported: %v", err)
	}
	if code, _ := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", other)); code != 200 {
		t.Errorf("the bindable endpoint was not applied")
	}
}

func TestDrainWaitsForRequestsInFlight(t *testing.T) {
	b := newBalancer(t)
	port := freePort(t)
	slow, _ := backend(t, "slow")
	if err := b.Update([]Endpoint{{Port: port, Backends: []Backend{slow}}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		_, body := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/?sleep=300ms", port))
		done <- body
	}()
	for b.counter("slow").Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.Update([]Endpoint{{Port: port}}) // removed from the pool, request still running
	if err := b.Drain(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-done:
		if body != "slow" {
			t.Errorf("in-flight request answered %q", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain returned but the request never finished")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.counter("stuck").Add(1)
	if err := b.Drain(ctx, "stuck"); err == nil {
		t.Error("Drain of a busy backend returned nil after ctx ended")
	}
}

// TestReplacingBackendsUnderLoadLosesNothing replaces every backend one by
// one, as a rolling upgrade does, while 8 workers send requests.
func TestReplacingBackendsUnderLoadLosesNothing(t *testing.T) {
	b := newBalancer(t)
	port := freePort(t)
	var (
		mu      sync.Mutex
		current []Backend
		servers = map[string]*httptest.Server{}
	)
	for i := 0; i < 4; i++ {
		be, srv := backend(t, fmt.Sprintf("v1-%d", i))
		current = append(current, be)
		servers[be.ID] = srv
	}
	b.Update([]Endpoint{{Port: port, Backends: current}})
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan loadgen.Result, 1)
	go func() {
		results <- loadgen.Run(ctx, fmt.Sprintf("http://127.0.0.1:%d/?sleep=2ms", port), 8, 5*time.Second)
	}()
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 4; i++ {
		old := current[i]
		be, srv := backend(t, fmt.Sprintf("v2-%d", i))
		mu.Lock()
		servers[be.ID] = srv
		next := append([]Backend(nil), current...)
		next[i] = be
		current = next
		mu.Unlock()
		b.Update([]Endpoint{{Port: port, Backends: current}})
		if err := b.Drain(context.Background(), old.ID); err != nil {
			t.Fatal(err)
		}
		servers[old.ID].Config.SetKeepAlivesEnabled(false)
		servers[old.ID].Close()
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	res := <-results
	if res.Requests < 50 {
		t.Fatalf("too few requests to mean anything: %s", res)
	}
	if res.Failures != 0 {
		t.Errorf("%d requests failed while backends were replaced: %v", res.Failures, res.Errors)
	}
}

func TestTCPEndpoint(t *testing.T) {
	b := newBalancer(t)
	port := freePort(t)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	if err := b.Update([]Endpoint{{Protocol: "tcp", Port: port, Backends: []Backend{{ID: "echo", Addr: echo.Addr().String()}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "ping")
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "ping" {
		t.Errorf("echo through the balancer: %q", got)
	}
	if err := b.Drain(context.Background(), "echo"); err != nil {
		t.Errorf("drain after the connection closed: %v", err)
	}
}
