// Package lb is the load balancer for the public endpoints of web and VM
// roles. It runs inside the controller and is fed declaratively: Update
// takes the full set of endpoints with the instances that may take traffic,
// and the balancer opens, re-points and closes listeners to match.
//
// HTTP endpoints are reverse-proxied to the backend with the fewest requests
// in flight; a request that could not reach a backend (the dial failed, so
// nothing was sent) is retried on another, which is what keeps instance
// deaths and rolling upgrades from failing requests. TCP endpoints are
// spliced connections. Drain waits until a backend that Update removed has no
// request or connection left.
package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one instance behind an endpoint.
type Backend struct {
	ID   string // instance ID
	Addr string // host:port
}

// Endpoint is a public port and the backends that serve it.
type Endpoint struct {
	Key      string // e.g. "hello/web/http", for logs and stats
	Protocol string // "http" (default) or "tcp"
	Port     int
	Backends []Backend
}

// EndpointStats counts what an endpoint did.
type EndpointStats struct {
	Key      string
	Port     int
	Requests int64            // requests (HTTP) or connections (TCP) accepted
	Failures int64            // answered 502/503 by the balancer, or connections it could not place
	Active   map[string]int64 // backend ID -> requests or connections in flight
}

// Balancer serves every public endpoint.
type Balancer struct {
	host string
	log  *slog.Logger

	mu        sync.Mutex
	listeners map[int]*listener

	inflightMu sync.Mutex
	inflight   map[string]*atomic.Int64 // backend ID -> in flight, across endpoints
}

// New returns a balancer that binds public ports on host.
func New(host string, logger *slog.Logger) *Balancer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Balancer{host: host, log: logger, listeners: map[int]*listener{}, inflight: map[string]*atomic.Int64{}}
}

// listener is one public port.
type listener struct {
	b        *Balancer
	key      string
	protocol string
	port     int
	ln       net.Listener
	pool     atomic.Pointer[[]Backend]
	next     atomic.Uint64 // round-robin start among equally loaded backends
	requests atomic.Int64
	failures atomic.Int64
	stop     func() // closes the listener and what it serves
}

// Update makes the served endpoints exactly eps. Ports that cannot be bound
// are reported in the returned error; the rest are applied.
func (b *Balancer) Update(eps []Endpoint) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	want := map[int]bool{}
	for _, ep := range eps {
		if ep.Protocol == "" {
			ep.Protocol = "http"
		}
		want[ep.Port] = true
		l := b.listeners[ep.Port]
		if l != nil && l.protocol != ep.Protocol {
			l.stop()
			delete(b.listeners, ep.Port)
			l = nil
		}
		if l == nil {
			var err error
			if l, err = b.listen(ep); err != nil {
				errs = append(errs, err)
				continue
			}
			b.listeners[ep.Port] = l
		}
		l.key = ep.Key
		backends := append([]Backend(nil), ep.Backends...)
		l.pool.Store(&backends)
	}
	for port, l := range b.listeners {
		if !want[port] {
			l.stop()
			delete(b.listeners, port)
		}
	}
	return errors.Join(errs...)
}

func (b *Balancer) listen(ep Endpoint) (*listener, error) {
	addr := net.JoinHostPort(b.host, strconv.Itoa(ep.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lb: %s: cannot listen on %s: %w", ep.Key, addr, err)
	}
	l := &listener{b: b, key: ep.Key, protocol: ep.Protocol, port: ep.Port, ln: ln}
	empty := []Backend{}
	l.pool.Store(&empty)
	switch ep.Protocol {
	case "tcp":
		l.serveTCP()
	default:
		l.serveHTTP()
	}
	b.log.Info("endpoint published", "endpoint", ep.Key, "addr", addr, "protocol", ep.Protocol)
	return l, nil
}

// counter returns the in-flight counter of a backend.
func (b *Balancer) counter(id string) *atomic.Int64 {
	b.inflightMu.Lock()
	defer b.inflightMu.Unlock()
	c, ok := b.inflight[id]
	if !ok {
		c = &atomic.Int64{}
		b.inflight[id] = c
	}
	return c
}

// pick chooses the backend with the fewest requests in flight, skipping
// those in tried; equally loaded ones take turns.
func (l *listener) pick(tried map[string]bool) (Backend, bool) {
	pool := *l.pool.Load()
	n := len(pool)
	if n == 0 {
		return Backend{}, false
	}
	start := int(l.next.Add(1) % uint64(n))
	best, bestLoad := -1, int64(0)
	for i := 0; i < n; i++ {
		be := pool[(start+i)%n]
		if tried[be.ID] {
			continue
		}
		load := l.b.counter(be.ID).Load()
		if best < 0 || load < bestLoad {
			best, bestLoad = (start+i)%n, load
		}
	}
	if best < 0 {
		return Backend{}, false
	}
	return pool[best], true
}

// Drain returns once backendID has nothing in flight, or ctx ends. Callers
// remove the backend with Update first, so nothing new reaches it.
func (b *Balancer) Drain(ctx context.Context, backendID string) error {
	c := b.counter(backendID)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for c.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	b.inflightMu.Lock()
	if c.Load() == 0 {
		delete(b.inflight, backendID)
	}
	b.inflightMu.Unlock()
	return nil
}

// Stats reports every endpoint, ordered by port.
func (b *Balancer) Stats() []EndpointStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []EndpointStats
	for _, l := range b.listeners {
		st := EndpointStats{Key: l.key, Port: l.port, Requests: l.requests.Load(), Failures: l.failures.Load(), Active: map[string]int64{}}
		for _, be := range *l.pool.Load() {
			st.Active[be.ID] = b.counter(be.ID).Load()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

// Close stops every endpoint.
func (b *Balancer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for port, l := range b.listeners {
		l.stop()
		delete(b.listeners, port)
	}
	return nil
}
