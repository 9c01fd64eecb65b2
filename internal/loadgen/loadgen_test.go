package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsRequestsAndFailures(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	// Stop once the server has seen enough requests: the run ends on ctx,
	// whatever the machine's speed.
	go func() {
		for n.Load() < 200 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	res := Run(ctx, srv.URL, 4, 5*time.Second)
	served := int(n.Load())
	if res.Requests < 200-4 || res.Requests > served {
		t.Fatalf("%d requests counted, the server saw %d", res.Requests, served)
	}
	// Every tenth answer is a 500; requests cut by the end are not counted.
	if want := res.Requests / 10; res.Failures < want-4 || res.Failures > want+4 {
		t.Errorf("%d failures of %d requests, want about %d", res.Failures, res.Requests, want)
	}
	if res.Errors["500 Internal Server Error"] != res.Failures {
		t.Errorf("errors %v do not add up to %d failures", res.Errors, res.Failures)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 || res.Duration <= 0 {
		t.Errorf("latencies out of order: %s", res)
	}
	if s := res.String(); !strings.Contains(s, "failed") || !strings.Contains(s, "500 Internal Server Error") {
		t.Errorf("String() = %q", s)
	}
}

func TestRunCountsTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close() // nothing listens: every request is refused
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res := Run(ctx, url, 2, time.Second)
	if res.Requests == 0 || res.Failures != res.Requests {
		t.Fatalf("against a closed port: %s", res)
	}
	if len(res.Errors) == 0 || len(res.Errors) > maxErrorKinds {
		t.Errorf("error kinds: %v", res.Errors)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	const workers = 3
	var waiting atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		waiting.Add(1)
		<-r.Context().Done() // never answers
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for waiting.Load() < workers {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	// Every worker hangs in a request until ctx ends: Run returns, and the
	// requests it cut are not failures.
	res := Run(ctx, srv.URL, workers, 0)
	if res.Failures != 0 || res.Requests != 0 {
		t.Errorf("a run cut before any answer: %s", res)
	}
}

// RunWithHeader sends its header with every request: a server that wants
// a token answers each one.
func TestRunWithHeaderSendsIt(t *testing.T) {
	var n, refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.Header.Get("Authorization") != "Bearer t0ken" || r.Header.Get("Metadata") != "true" {
			refused.Add(1)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for n.Load() < 50 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	res := RunWithHeader(ctx, srv.URL, http.Header{"Authorization": {"Bearer t0ken"}, "Metadata": {"true"}}, 2, 5*time.Second)
	if res.Requests == 0 || res.Failures != 0 || refused.Load() != 0 {
		t.Errorf("%s; the server refused %d", res, refused.Load())
	}
}
