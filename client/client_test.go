package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
)

// unavailableOnce is a controller that answers its first request 503,
// with the headers given, and the ones after 200; it counts requests.
func unavailableOnce(t *testing.T, header http.Header) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"unavailable","message":"raftstore: not the leader"}}`))
			return
		}
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestRepeatsUnavailable: a 503 with Retry-After is asked again, except
// when the server says the outcome is unknown and the request is not
// idempotent (it may have been carried out: a POST must not run twice).
func TestRepeatsUnavailable(t *testing.T) {
	retry := http.Header{"Retry-After": {"1"}}
	unknown := http.Header{"Retry-After": {"1"}, api.HeaderOutcome: {api.OutcomeUnknown}}
	for _, tc := range []struct {
		name     string
		method   string
		header   http.Header
		requests int32
	}{
		{"GET not leader", http.MethodGet, retry, 2},
		{"POST not leader", http.MethodPost, retry, 2},
		{"PUT outcome unknown", http.MethodPut, unknown, 2},
		{"DELETE outcome unknown", http.MethodDelete, unknown, 2},
		{"POST outcome unknown", http.MethodPost, unknown, 1},
		{"GET without Retry-After", http.MethodGet, http.Header{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := unavailableOnce(t, tc.header)
			_, err := client.New(srv.URL).Do(context.Background(), tc.method, "/v1/services/web", nil, map[string]string{}, nil)
			if got := n.Load(); got != tc.requests {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
			if wantErr := tc.requests == 1; wantErr != (err != nil) {
				t.Errorf("err = %v, want an error: %v", err, wantErr)
			}
			if err != nil && !errors.Is(err, api.ErrUnavailable) {
				t.Errorf("err = %v, want an api unavailable error", err)
			}
		})
	}
}

// TestFailoverOnlyWhenNotSent: with two controllers, a request goes on
// to the second when the first cannot be connected to; when the first
// took it and dropped the connection, only an idempotent one does.
func TestFailoverOnlyWhenNotSent(t *testing.T) {
	var second atomic.Int32
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		second.Add(1)
		w.Write([]byte(`{}`))
	}))
	defer good.Close()

	// refused: an address nothing listens on (a listener closed at once).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	// dropping: a server that reads the request and closes the connection
	// without answering, as one that crashed while carrying it out.
	drop, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer drop.Close()
	go func() {
		for {
			c, err := drop.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096))
			c.Close()
		}
	}()
	dropping := drop.Addr().String()

	for _, tc := range []struct {
		name   string
		first  string
		method string
		sent   bool // reaches the second server
	}{
		{"POST refused", refused, http.MethodPost, true},
		{"POST dropped", dropping, http.MethodPost, false},
		{"PUT dropped", dropping, http.MethodPut, true},
		{"GET dropped", dropping, http.MethodGet, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second.Store(0)
			_, err := client.New(tc.first+","+good.URL).Do(context.Background(), tc.method, "/v1/services/web/rollback", nil, map[string]string{}, nil)
			if got := second.Load() > 0; got != tc.sent {
				t.Errorf("reached the second server: %v, want %v (err %v)", got, tc.sent, err)
			}
			if (err == nil) != tc.sent {
				t.Errorf("err = %v", err)
			}
		})
	}
}
