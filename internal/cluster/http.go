package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/raftstore"
	"github.com/weftcloud/weft/internal/state"
)

// forwardedHeader marks a request a follower forwarded, so that two
// servers that disagree about the leader cannot bounce it forever.
const forwardedHeader = "X-Weft-Forwarded-By"

// Server is this server's part of the cluster's API.
type Server struct {
	store *raftstore.Store
	self  api.ServerSelf
	link  Link
	log   *slog.Logger

	// Removed, when set, forgets what else the state holds of a server
	// before remove-peer takes it out of the cluster (its storage).
	Removed func(ctx context.Context, name string) error

	mu      sync.Mutex
	proxies map[string]*httputil.ReverseProxy // by leader API address
}

// NewServer returns the cluster API of the server self backed by store.
func NewServer(store *raftstore.Store, self api.ServerSelf, link Link, log *slog.Logger) *Server {
	return &Server{store: store, self: self, link: link, log: log, proxies: map[string]*httputil.ReverseProxy{}}
}

// SelfHandler answers GET /v1/cluster/self, and 503 to everything else: what
// a server serves while it forms or joins the cluster.
func SelfHandler(self api.ServerSelf) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/cluster/self" {
			httpapi.WriteJSON(w, http.StatusOK, self)
			return
		}
		httpapi.WriteError(nil, w, r, api.Errorf(api.CodeUnavailable, "server %s is joining its cluster; try again shortly", self.Name))
	})
}

// Handler serves the cluster routes and passes everything else to next,
// here when this server may answer it and at the leader otherwise. Writes
// always go to the leader. Reads are consistent: the leader answers them
// after checking it still leads; with ?stale any server answers from its
// own copy (not to a token of weft token create: see tokenCaller).
func (s *Server) Handler(next http.Handler) http.Handler {
	mux := access.NewMux()
	mux.HandleFunc("GET /v1/cluster/self", func(w http.ResponseWriter, r *http.Request) { httpapi.WriteJSON(w, http.StatusOK, s.self) })
	mux.HandleFunc("GET /v1/cluster/members", s.members)
	mux.HandleFunc("POST /v1/cluster/join", s.leaderOnly(s.join))
	mux.HandleFunc("DELETE /v1/cluster/members/{name}", s.leaderOnly(s.removePeer))
	mux.HandleFunc("GET /v1/cluster/snapshot", s.leaderOnly(s.snapshot))
	mux.HandleFunc("POST /v1/cluster/snapshot", s.leaderOnly(s.restore))
	mux.Pass(s.leaderOnly(next.ServeHTTP))
	return mux
}

// leaderOnly serves h here when this server may, and forwards otherwise.
func (s *Server) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if read && ((r.URL.Query().Has("stale") && !tokenCaller(r)) || r.URL.Path == "/v1/status") {
			h(w, r)
			return
		}
		if s.store.IsLeader() {
			if !read {
				h(w, r)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			err := s.store.Consistent(ctx)
			cancel()
			if err == nil {
				h(w, r)
				return
			}
			var nl raftstore.ErrNotLeader
			if !errors.As(err, &nl) {
				httpapi.WriteError(s.log, w, r, api.Errorf(api.CodeUnavailable, "cannot confirm leadership for a consistent read: %v (add ?stale to read this server's copy)", err))
				return
			}
		}
		s.forward(w, r)
	}
}

// tokenCaller says whether the caller came with a token of weft token
// create (a tenant's, or an operator's). Its reads are never answered from
// this server's own copy, even with ?stale: the leader answers them, after
// checking the token again, so that a token is refused everywhere as soon
// as its revocation (or its tenant's deletion) is acknowledged, also by a
// server that has not applied it, or is cut off from the leader.
func tokenCaller(r *http.Request) bool {
	p := access.From(r.Context())
	return p.Role == access.Tenant || (p.Role == access.Operator && p.Name != "")
}

// forward sends the request to the leader and streams its answer back.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) {
	leader := s.store.Leader()
	switch {
	case r.Header.Get(forwardedHeader) != "":
		httpapi.WriteError(s.log, w, r, api.Errorf(api.CodeUnavailable, "server %s was told it leads but does not: an election is under way; try again", s.self.Name))
		return
	case leader.API == "":
		httpapi.WriteError(s.log, w, r, api.Errorf(api.CodeUnavailable, "no leader: an election is under way; try again shortly"))
		return
	}
	r.Header.Set(forwardedHeader, s.self.Name)
	// The leader takes the caller from this server's word (access.Enforce
	// put it in the context here), not from the caller's credentials.
	r.Header.Set(access.ForwardedHeader, access.From(r.Context()).Encode())
	s.proxy(leader.API).ServeHTTP(w, r)
}

func (s *Server) proxy(addr string) *httputil.ReverseProxy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.proxies[addr]; ok {
		return p
	}
	target, err := url.Parse(s.link.url(addr, ""))
	if err != nil {
		target = &url.URL{Scheme: s.link.scheme, Host: addr}
	}
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = s.link.client.Transport
	p.FlushInterval = -1 // logs and events stream
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		answer := error(api.Errorf(api.CodeUnavailable, "the leader at %s cannot be reached: %v", addr, err))
		// Unless the connection was never made, the leader may have
		// carried the request out before it went away.
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			answer = errors.Join(answer, state.ErrUnknownOutcome)
		}
		httpapi.WriteError(s.log, w, r, answer)
	}
	s.proxies[addr] = p
	return p
}

// FetchFromPeers asks the other servers, one after another, for what they
// hold at path (a content-addressed object such as a package) from their
// own copies, and returns the first answer.
func (s *Server) FetchFromPeers(ctx context.Context, path string) (io.ReadCloser, error) {
	members, err := s.store.Members()
	if err != nil {
		return nil, err
	}
	last := fmt.Errorf("no other server")
	for _, m := range members {
		addr, ok := apiAddress(m.Addr)
		if m.ID == s.self.Name || !ok {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.link.url(addr, path+"?stale&local"), nil)
		if err != nil {
			return nil, err
		}
		resp, err := s.link.client.Do(req)
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode == http.StatusOK {
			return resp.Body, nil
		}
		resp.Body.Close()
		last = fmt.Errorf("%s: %s", m.ID, resp.Status)
	}
	return nil, last
}

func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.Members()
	if err != nil {
		httpapi.WriteError(s.log, w, r, err)
		return
	}
	leader := s.store.Leader()
	out := []api.Member{}
	for _, m := range list {
		am := api.Member{Name: m.ID, Address: m.Addr, Leader: m.Leader, Voter: m.Voter}
		switch m.ID {
		case leader.ID:
			am.API = leader.API
		case s.self.Name:
			am.API = s.self.API
		}
		out = append(out, am)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	var req api.JoinCluster
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Name == "" || req.Raft == "" {
		httpapi.WriteError(s.log, w, r, api.Errorf(api.CodeInvalid, "join: a name and a Raft address are required"))
		return
	}
	// A server joins under the name its own certificate gives: another
	// server's, or the certificate the servers share, cannot add a voter
	// under a name of its choosing. (Without TLS no server joins: it is
	// alone.)
	if p := access.From(r.Context()); p.Role != access.Server || p.Name != req.Name {
		httpapi.WriteError(s.log, w, r, api.Errorf(api.CodeForbidden, "join: %s may not join as server %s: a joining server presents a certificate of its own for its name (weft tls server --name %s)", p, req.Name, req.Name))
		return
	}
	if err := s.store.Join(r.Context(), req.Name, req.Raft); err != nil {
		httpapi.WriteError(s.log, w, r, err)
		return
	}
	s.log.Info("server joined the cluster", "server", req.Name, "raft", req.Raft)
	httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	members, err := s.store.Members()
	if err != nil {
		httpapi.WriteError(s.log, w, r, err)
		return
	}
	found := false
	for _, m := range members {
		found = found || m.ID == name
	}
	if !found {
		httpapi.WriteError(s.log, w, r, api.Errorf(api.CodeNotFound, "no member %s (weft operator members)", name))
		return
	}
	if s.Removed != nil {
		if err := s.Removed(r.Context(), name); err != nil {
			httpapi.WriteError(s.log, w, r, err)
			return
		}
	}
	if err := s.store.RemovePeer(r.Context(), name); err != nil {
		httpapi.WriteError(s.log, w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if err := s.store.Snapshot(w); err != nil {
		s.log.Error("snapshot save failed", "err", err)
	}
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request) {
	if err := s.store.Restore(http.MaxBytesReader(w, r.Body, 8<<30)); err != nil {
		httpapi.WriteError(s.log, w, r, api.Errorf(api.CodeInvalid, "restore: %v", err))
		return
	}
	s.log.Info("state restored from a snapshot")
	httpapi.WriteJSON(w, http.StatusOK, struct{}{})
}
