package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/loadgen"
)

// waitFor polls cond; it bounds a wait for something the test set in
// motion, it does not time the code under test.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// parked reports whether a Drain is waiting on the backend id.
func parked(b *Balancer, id string) bool {
	b.bmu.Lock()
	be := b.backends[id]
	b.bmu.Unlock()
	if be == nil {
		return false
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.idle != nil
}

func TestDrainWaitsForRequestInFlight(t *testing.T) {
	b := newBalancer(t)
	slow, fresh := newBackend(t, "slow"), newBackend(t, "fresh")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := b.Update([]Endpoint{{Key: "k", Port: port, Backends: []Backend{slow.Backend}}}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		code, body := get(t, url+"/block")
		done <- answer{code, body}
	}()
	<-slow.entered
	if err := b.Update([]Endpoint{{Key: "k", Port: port, Backends: []Backend{fresh.Backend}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Drain(ctx, "slow"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain with a request in flight and an ended ctx: %v", err)
	}
	var released atomic.Bool
	drained := make(chan error, 1)
	go func() {
		err := b.Drain(context.Background(), "slow")
		if err == nil && !released.Load() {
			err = errors.New("Drain returned while the request was still blocked")
		}
		drained <- err
	}()
	waitFor(t, "Drain to wait", func() bool { return parked(b, "slow") })
	// New requests go to the new backend while the old one drains.
	if _, body := get(t, url+"/"); body != "fresh" {
		t.Errorf("request during the drain went to %q", body)
	}
	released.Store(true)
	close(slow.unblock)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if a := <-done; a.code != http.StatusOK || a.body != "slow" {
		t.Errorf("the drained request got %d %q", a.code, a.body)
	}
	if err := b.Drain(context.Background(), "never-seen"); err != nil {
		t.Errorf("Drain of an unknown backend: %v", err)
	}
}

func TestRemovedBackendLosesIdleConnections(t *testing.T) {
	b := newBalancer(t)
	var open atomic.Int64
	be := newBackendWith(t, "a", func(srv *http.Server) {
		srv.ConnState = func(c net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		}
	})
	port := freePort(t)
	if err := b.Update([]Endpoint{{Key: "k", Port: port, Backends: []Backend{be.Backend}}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	}
	if open.Load() == 0 {
		t.Fatal("no keep-alive connection to the backend")
	}
	if err := b.Update([]Endpoint{{Key: "k", Port: port}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle connections to close", func() bool { return open.Load() == 0 })
}

// TestRollingUpgradeLosesNothing replaces every backend one by one, as a
// rolling upgrade does (add the new, remove the old, drain it, stop it),
// while 8 workers send requests.
func TestRollingUpgradeLosesNothing(t *testing.T) {
	stops := []struct {
		name string
		stop func(*testBackend) error
	}{
		{"graceful shutdown", func(tb *testBackend) error { return tb.srv.Config.Shutdown(context.Background()) }},
		// A drained instance may as well be killed: nothing is in flight
		// and the balancer keeps no connection to it.
		{"abrupt close", func(tb *testBackend) error { return tb.srv.Config.Close() }},
	}
	for _, st := range stops {
		t.Run(st.name, func(t *testing.T) { rollingUpgrade(t, st.stop) })
	}
}

func rollingUpgrade(t *testing.T, stop func(*testBackend) error) {
	b := newBalancer(t)
	port := freePort(t)
	var current []*testBackend
	endpoints := func() []Endpoint {
		ep := Endpoint{Key: "hello/web/http", Port: port}
		for _, tb := range current {
			ep.Backends = append(ep.Backends, tb.Backend)
		}
		return []Endpoint{ep}
	}
	for i := range 3 {
		current = append(current, newBackend(t, fmt.Sprintf("v1-%d", i)))
	}
	if err := b.Update(endpoints()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan loadgen.Result, 1)
	go func() { results <- loadgen.Run(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), 8, 5*time.Second) }()
	for i := range 3 {
		old, next := current[0], newBackend(t, fmt.Sprintf("v2-%d", i))
		current = append(current, next)
		if err := b.Update(endpoints()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the new backend to take load", func() bool { return next.hits.Load() >= 50 })
		current = current[1:]
		if err := b.Update(endpoints()); err != nil {
			t.Fatal(err)
		}
		if err := b.Drain(context.Background(), old.ID); err != nil {
			t.Fatal(err)
		}
		if err := stop(old); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the last backend to take load", func() bool { return current[2].hits.Load() >= 100 })
	cancel()
	res := <-results
	t.Log(res)
	if res.Failures != 0 {
		t.Errorf("%d of %d requests failed while backends were replaced: %v", res.Failures, res.Requests, res.Errors)
	}
	if st := b.Stats(); st[0].Failures != 0 {
		t.Errorf("the balancer answered %d failures itself", st[0].Failures)
	}
}

// TestCrashedBackendUnderLoad kills a backend that is still listed, with
// requests in flight to it, as when an instance dies before the controller
// notices: GETs cut short are retried elsewhere, later ones find its port
// closed and go elsewhere.
func TestCrashedBackendUnderLoad(t *testing.T) {
	b := newBalancer(t)
	var bes []Backend
	var all []*testBackend
	for i := range 3 {
		tb := newBackend(t, fmt.Sprint("i", i))
		all = append(all, tb)
		bes = append(bes, tb.Backend)
	}
	url := publish(t, b, "k", bes...)
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan loadgen.Result, 1)
	go func() { results <- loadgen.Run(ctx, url+"/", 8, 5*time.Second) }()
	waitFor(t, "load", func() bool { return all[0].hits.Load() >= 50 })
	all[0].srv.Config.Close()
	seen := all[1].hits.Load()
	waitFor(t, "load after the crash", func() bool { return all[1].hits.Load() >= seen+200 })
	cancel()
	res := <-results
	if res.Failures != 0 {
		t.Errorf("%d of %d requests failed around the crash: %v", res.Failures, res.Requests, res.Errors)
	}
}
