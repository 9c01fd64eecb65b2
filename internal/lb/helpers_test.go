package lb

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// testBackend is a real HTTP server standing in for an instance. It answers
// its name on /, echoes the body on /echo, lists the headers it got on
// /headers, and on /block waits until unblock is closed.
type testBackend struct {
	Backend
	srv     *httptest.Server
	hits    atomic.Int64
	entered chan struct{} // one value per request that reached /block
	unblock chan struct{}
}

func newBackend(t testing.TB, name string) *testBackend {
	t.Helper()
	return newBackendWith(t, name, nil)
}

// newBackendWith lets setup adjust the server before it starts.
func newBackendWith(t testing.TB, name string, setup func(*http.Server)) *testBackend {
	t.Helper()
	tb := &testBackend{entered: make(chan struct{}, 64), unblock: make(chan struct{})}
	tb.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tb.hits.Add(1)
		switch r.URL.Path {
		case "/echo":
			// Read all first: an HTTP/1 handler cannot read after it wrote.
			body, _ := io.ReadAll(r.Body)
			w.Write(body)
		case "/headers":
			h := map[string]string{"Host": r.Host}
			for k := range r.Header {
				h[k] = r.Header.Get(k)
			}
			json.NewEncoder(w).Encode(h)
		case "/block":
			tb.entered <- struct{}{}
			<-tb.unblock
			fmt.Fprint(w, name)
		default:
			fmt.Fprint(w, name)
		}
	}))
	if setup != nil {
		setup(tb.srv.Config)
	}
	tb.srv.Start()
	t.Cleanup(func() {
		select {
		case <-tb.unblock:
		default:
			close(tb.unblock)
		}
		tb.srv.Close()
	})
	tb.Backend = Backend{ID: name, Addr: tb.srv.Listener.Addr().String()}
	return tb
}

// deadAddr returns an address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func freePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(deadAddr(t))
	var p int
	fmt.Sscan(port, &p)
	return p
}

func newBalancer(t testing.TB) *Balancer {
	b := New("127.0.0.1", nil)
	t.Cleanup(func() { b.Close() })
	return b
}

// publish serves bes on a fresh port and returns its base URL.
func publish(t testing.TB, b *Balancer, key string, bes ...Backend) string {
	t.Helper()
	port := freePort(t)
	if err := b.Update([]Endpoint{{Key: key, Port: port, Backends: bes}}); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func post(t testing.TB, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(got)
}

// active returns the in-flight count the balancer reports for id.
func active(b *Balancer, id string) int64 {
	var n int64
	for _, st := range b.Stats() {
		n += st.Active[id]
	}
	return n
}
