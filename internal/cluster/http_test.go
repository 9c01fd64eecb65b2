package cluster_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/cluster"
	"github.com/weftcloud/weft/internal/raftstore"
)

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func open(t *testing.T, cfg raftstore.Config) *raftstore.Store {
	cfg.DataDir = t.TempDir()
	s, err := raftstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// unavailable checks that w is the 503 of an API that cannot serve the
// request now, with Retry-After, saying (or not) that the outcome is
// unknown.
func unavailable(t *testing.T, w *httptest.ResponseRecorder, unknown bool) {
	t.Helper()
	var body api.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("%d %q: %v", w.Code, w.Body, err)
	}
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || body.Error.Code != api.CodeUnavailable {
		t.Errorf("%d, Retry-After %q, %+v; want 503 unavailable with Retry-After", w.Code, w.Header().Get("Retry-After"), body.Error)
	}
	if got := w.Header().Get(api.HeaderOutcome) == api.OutcomeUnknown; got != unknown {
		t.Errorf("%s: %q, want unknown: %v (%s)", api.HeaderOutcome, w.Header().Get(api.HeaderOutcome), unknown, body.Error.Message)
	}
}

// TestForwardWithoutLeader: a write to a server that knows no leader is
// answered 503 with Retry-After, never reaching the API behind: nothing
// was done, so any request may be sent again.
func TestForwardWithoutLeader(t *testing.T) {
	store := open(t, raftstore.Config{NodeID: "s1", BindAddr: "127.0.0.1:0"}) // waits to be added: never leads
	self := api.ServerSelf{Name: "s1"}
	reached := false
	h := cluster.NewServer(store, self, cluster.NewLink(nil, ""), nil).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodPut, "/v1/services/web", strings.NewReader(`{}`)),
		httptest.NewRequest(http.MethodPost, "/v1/services/web/rollback", nil),
		httptest.NewRequest(http.MethodGet, "/v1/services", nil),
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		unavailable(t, w, false)
	}
	if reached {
		t.Error("the API behind served a request while no server leads")
	}
}

// TestForwardToALostLeader: a follower forwards to the leader's API; when
// that leader takes the request and goes away without answering, the 503
// says the outcome is unknown (it may have done it), so that the client
// sends only an idempotent request again; when it cannot be connected to
// at all, the request was not done.
func TestForwardToALostLeader(t *testing.T) {
	// Each server announces, as its API, a listener that reads a request
	// and drops the connection: a leader that crashed while serving it.
	dropper := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Read(make([]byte, 4096))
				c.Close()
			}
		}()
		return l
	}
	peers := []raftstore.Peer{{ID: "s1", Addr: freeAddr(t)}, {ID: "s2", Addr: freeAddr(t)}}
	stores := map[string]*raftstore.Store{}
	apis := map[string]net.Listener{}
	for _, p := range peers {
		apis[p.ID] = dropper()
		stores[p.ID] = open(t, raftstore.Config{NodeID: p.ID, BindAddr: p.Addr, Peers: peers, API: "http://" + apis[p.ID].Addr().String()})
	}
	var follower *raftstore.Store
	var name string
	deadline := time.Now().Add(15 * time.Second)
	for follower == nil {
		if time.Now().After(deadline) {
			t.Fatal("no leader announced its API")
		}
		time.Sleep(50 * time.Millisecond)
		for id, s := range stores {
			if !s.IsLeader() && s.Leader().API != "" {
				follower, name = s, id
			}
		}
	}
	h := cluster.NewServer(follower, api.ServerSelf{Name: name}, cluster.NewLink(nil, ""), nil).Handler(http.NotFoundHandler())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/services/web/rollback", nil))
	unavailable(t, w, true)

	// A leader that cannot be connected to got nothing.
	for id, s := range stores {
		if s.IsLeader() {
			apis[id].Close()
		}
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/services/web/rollback", nil))
	unavailable(t, w, false)
}
