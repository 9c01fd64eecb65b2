// Package cluster makes several controller servers one service. It forms
// or joins the Raft cluster from --join and --bootstrap-expect, forwards to
// the leader the requests a follower must not serve, runs leader-only work
// while this server leads, and serves the cluster's own API (members, join,
// remove-peer, snapshots).
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/raftstore"
)

// RaftAddress is where a server with API address listen takes Raft
// traffic: the next port on the same host (7071 for 7070). A server on an
// ephemeral API port (port 0) takes an ephemeral Raft port too, which is
// only right for a single server: nobody dials it.
func RaftAddress(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("cluster: --listen %q: %w", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p >= 65535 {
		return "", fmt.Errorf("cluster: --listen %q: bad port", listen)
	}
	if p == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}

// apiAddress is the API address of the server whose Raft address is raft:
// the port before it (RaftAddress's rule).
func apiAddress(raft string) (string, bool) {
	host, port, err := net.SplitHostPort(raft)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p <= 1 {
		return "", false
	}
	return net.JoinHostPort(host, strconv.Itoa(p-1)), true
}

// Link is how a server reaches the others: plain HTTP, or HTTPS checked
// against the cluster's CA with its own certificate (mutual TLS).
type Link struct {
	client *http.Client
	scheme string
}

// NewLink returns a link over mutual TLS with config, or over plain HTTP
// when config is nil; then token, when set, goes with every request as a
// bearer token (a server alone, without TLS, calls its own API with it).
func NewLink(config *tls.Config, token string) Link {
	if config == nil {
		var rt http.RoundTripper = http.DefaultTransport
		if token != "" {
			rt = bearer{token: token, next: rt}
		}
		return Link{client: &http.Client{Transport: rt}, scheme: "http"}
	}
	return Link{client: &http.Client{Transport: &http.Transport{TLSClientConfig: config}}, scheme: "https"}
}

// bearer adds a bearer token to the requests it sends.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// Client is the link's HTTP client, for requests to other servers.
func (l Link) Client() *http.Client { return l.client }

// url is addr's path; addr may name its scheme.
func (l Link) url(addr, path string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/") + path
	}
	return l.scheme + "://" + addr + path
}

// DiscoverPeers asks the servers at join who they are until expect servers,
// self included, are known, and returns them in the same order every server
// computes: each bootstraps the same configuration and Raft elects a leader
// as soon as a majority runs.
func DiscoverPeers(ctx context.Context, link Link, self api.ServerSelf, join []string, expect int, log *slog.Logger) ([]raftstore.Peer, error) {
	known := map[string]api.ServerSelf{self.Name: self}
	for round := 0; ; round++ {
		for _, addr := range join {
			var other api.ServerSelf
			if err := link.call(ctx, http.MethodGet, addr, "/v1/cluster/self", nil, &other); err != nil {
				continue
			}
			if prev, ok := known[other.Name]; ok && prev.Raft != other.Raft {
				return nil, fmt.Errorf("cluster: two servers are named %s (%s and %s): give each a unique --name", other.Name, prev.Raft, other.Raft)
			}
			known[other.Name] = other
		}
		if len(known) >= expect {
			var peers []raftstore.Peer
			for _, s := range known {
				peers = append(peers, raftstore.Peer{ID: s.Name, Addr: s.Raft})
			}
			slices.SortFunc(peers, func(a, b raftstore.Peer) int { return strings.Compare(a.ID, b.ID) })
			return peers, nil
		}
		if round%20 == 0 {
			log.Info("waiting for servers to form a cluster", "known", len(known), "expect", expect)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: %d of %d servers found at %v: %w", len(known), expect, join, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// RequestJoin asks the servers at join to add self to their cluster, until
// one accepts (a follower forwards it to the leader) or ctx ends.
func RequestJoin(ctx context.Context, link Link, self api.ServerSelf, join []string, log *slog.Logger) error {
	for {
		var last error
		for _, addr := range join {
			err := link.call(ctx, http.MethodPost, addr, "/v1/cluster/join", api.JoinCluster{Name: self.Name, Raft: self.Raft}, nil)
			if err == nil {
				log.Info("joined the cluster", "through", addr)
				return nil
			}
			last = err
		}
		log.Info("asking to join the cluster", "join", join, "err", last)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: join through %v: %w (last: %v)", join, ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

// call sends one JSON request to another server's API.
func (l Link) call(ctx context.Context, method, addr, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second) // a server that does not answer is retried
	defer cancel()
	var rd io.Reader = http.NoBody
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.url(addr, path), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorBody
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("%s %s: %s %s", method, addr, resp.Status, e.Error.Message)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Lead runs work while this server is the leader: it starts when the store
// says this server leads (having applied everything committed before), and
// its context ends when leadership is lost, or ctx ends.
func Lead(ctx context.Context, store *raftstore.Store, log *slog.Logger, work func(context.Context)) {
	var stop context.CancelFunc
	var done chan struct{}
	end := func() {
		if stop != nil {
			stop()
			<-done
			stop = nil
		}
	}
	defer end()
	ch := store.LeaderCh()
	for {
		select {
		case <-ctx.Done():
			return
		case leader, ok := <-ch:
			switch {
			case !ok:
				return
			case leader && stop == nil:
				stop, done = start(ctx, work)
				log.Info("leading the cluster: reconcilers started")
			case !leader && stop != nil:
				end()
				log.Info("no longer the leader: reconcilers stopped")
			}
		}
	}
}

// start runs work in its own goroutine with a context of its own.
func start(ctx context.Context, work func(context.Context)) (context.CancelFunc, chan struct{}) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); work(wctx) }()
	return cancel, done
}

// WaitLeader waits until the cluster has a leader whose API is known (or
// this server leads).
func WaitLeader(ctx context.Context, store *raftstore.Store) error {
	for {
		if store.IsLeader() || store.Leader().API != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("cluster: no leader elected: are a majority of the servers up?")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
