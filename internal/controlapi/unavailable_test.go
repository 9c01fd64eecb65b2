package controlapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/raftstore"
	"github.com/weftcloud/weft/internal/state"
)

// raftServer is one real Raft server of the controller's state, on a
// loopback port; mutate shapes its Config.
func raftServer(t *testing.T, mutate func(*raftstore.Config)) *raftstore.Store {
	cfg := raftstore.Config{NodeID: "s1", BindAddr: "127.0.0.1:0", DataDir: t.TempDir()}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := raftstore.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// controlAPI serves the controller's API over store, wrapped in record
// (nil: none), and returns its address and a service model to deploy.
func controlAPI(t *testing.T, store state.Store, record func(http.Handler) http.Handler) (string, api.ServiceSpec) {
	pkgs, err := pkgstore.Open(filepath.Join(t.TempDir(), "packages"))
	if err != nil {
		t.Fatal(err)
	}
	ctl := fabric.New(fabric.Config{}, store, pkgs, nil)
	var empty bytes.Buffer
	if err := pkgarchive.Pack(t.TempDir(), &empty); err != nil {
		t.Fatal(err)
	}
	pkg, err := ctl.PutPackage(context.Background(), &empty)
	if err != nil {
		t.Fatal(err)
	}
	h := controlapi.New(controlapi.Config{Controller: ctl, Log: slog.New(slog.DiscardHandler)})
	if record != nil {
		h = record(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, api.ServiceSpec{Name: "web", Roles: []api.RoleSpec{{
		Name: "web", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: pkg.Digest, Command: []string{"./web"}, Instances: 1,
	}}}
}

// TestNotLeaderIsUnavailable: a write to a server whose store is not the
// leader (a Raft server waiting to be added to a cluster, which never
// leads) is answered 503 with Retry-After, the answer the client asks
// again, not a 500; and it says nothing of an unknown outcome, since
// nothing was proposed.
func TestNotLeaderIsUnavailable(t *testing.T) {
	url, spec := controlAPI(t, raftServer(t, nil), nil)
	body, _ := json.Marshal(spec)
	req, _ := http.NewRequest(http.MethodPut, url+"/v1/services/web", bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer api.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || answer.Error.Code != api.CodeUnavailable {
		t.Errorf("deploy on a follower: %d, Retry-After %q, %+v", resp.StatusCode, resp.Header.Get("Retry-After"), answer.Error)
	}
	if o := resp.Header.Get(api.HeaderOutcome); o != "" {
		t.Errorf("%s: %q on a write that was never proposed", api.HeaderOutcome, o)
	}
}

// TestDeployWaitsForTheLeader: a deploy sent while the store has no
// leader yet (a server that bootstraps its cluster and has not elected
// itself) is refused 503 and asked again by the client until it goes
// through.
func TestDeployWaitsForTheLeader(t *testing.T) {
	store := raftServer(t, func(c *raftstore.Config) {
		c.Bootstrap = true
		// Long enough for the first request to find no leader.
		c.HeartbeatTimeout, c.ElectionTimeout = time.Second, time.Second
	})
	var mu sync.Mutex
	var statuses []int
	url, spec := controlAPI(t, store, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			h.ServeHTTP(rec, r)
			mu.Lock()
			statuses = append(statuses, rec.status)
			mu.Unlock()
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc, err := client.New(url).Deploy(ctx, spec)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if svc.Version != 1 || len(statuses) < 2 || statuses[0] != http.StatusServiceUnavailable || statuses[len(statuses)-1] != http.StatusOK {
		t.Errorf("deployed %+v after answers %v; want 503s, then 200", svc, statuses)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
