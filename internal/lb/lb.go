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
//
// A backend is known by its instance ID across all endpoints: its in-flight
// count, the one Drain waits on, covers every port it serves, and it has its
// own keep-alive pool, closed once it is unlisted and idle.
package lb

import (
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
	Protocol string
	Requests int64            // requests (HTTP) or connections (TCP) accepted
	Failures int64            // answered 502/503 by the balancer, or connections it could not place
	Active   map[string]int64 // backend ID -> requests or connections in flight, for the listed backends
}

const (
	// removeGrace is how long the requests and connections of a port that
	// Update removed may run on before they are cut.
	removeGrace = 30 * time.Second
	// dialTimeout bounds a connection to a backend; backends are on the
	// cluster's own network, so a slow dial means a dead one: try the next.
	dialTimeout = 2 * time.Second
)

// errClosed is returned by Update after Close.
var errClosed = errors.New("lb: balancer closed")

// Balancer serves every public endpoint. Its methods are safe for concurrent
// use.
type Balancer struct {
	host string
	log  *slog.Logger

	mu        sync.Mutex // serialises Update, Stats and Close
	listeners map[int]*listener
	winding   map[*listener]struct{} // withdrawn, their requests still running
	closed    bool

	bmu      sync.Mutex // guards backends; taken after mu, before a backend's own mu
	backends map[string]*backend

	bytes sync.Map // endpoint key -> *atomic.Int64: bytes through its client connections

	figures *figures
}

// New returns a balancer that binds public ports on host. A nil logger
// discards.
func New(host string, logger *slog.Logger) *Balancer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Balancer{host: host, log: logger, listeners: map[int]*listener{}, winding: map[*listener]struct{}{}, backends: map[string]*backend{}, figures: newFigures()}
}

// pool is what a listener serves now; Update swaps it whole, so a request
// sees either the old set or the new one.
type pool struct {
	key     string
	members []member
}

type member struct {
	addr string
	be   *backend
}

// listener is one public port.
type listener struct {
	b        *Balancer
	protocol string
	port     int
	ln       net.Listener
	pool     atomic.Pointer[pool]
	next     atomic.Uint64 // round-robin start among equally loaded backends
	requests atomic.Int64
	failures atomic.Int64
	// wind closes the port and lets what it serves run on; cut closes the
	// port and everything it serves. Both may be called more than once.
	wind, cut func()
}

// Update makes the served endpoints exactly eps: it binds new ports, closes
// ports no longer listed (their requests in flight may finish, for a grace
// period) and swaps each port's backends at once. A port that cannot be
// bound, or an endpoint that is invalid, is named in the returned error; the
// rest is applied.
func (b *Balancer) Update(eps []Endpoint) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	var errs []error
	want := map[int]string{}
	listed := map[string]bool{}
	for _, ep := range eps {
		if ep.Protocol == "" {
			ep.Protocol = "http"
		}
		if ep.Protocol != "http" && ep.Protocol != "tcp" {
			errs = append(errs, fmt.Errorf("lb: %s: unknown protocol %q", ep.Key, ep.Protocol))
			continue
		}
		if ep.Port < 1 || ep.Port > 65535 {
			errs = append(errs, fmt.Errorf("lb: %s: port %d out of range", ep.Key, ep.Port))
			continue
		}
		if other, dup := want[ep.Port]; dup {
			errs = append(errs, fmt.Errorf("lb: %s: port %d is already published by %s", ep.Key, ep.Port, other))
			continue
		}
		want[ep.Port] = ep.Key
		l := b.listeners[ep.Port]
		if l != nil && l.protocol != ep.Protocol {
			b.withdraw(l)
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
		p := &pool{key: ep.Key}
		for _, be := range ep.Backends {
			p.members = append(p.members, member{addr: be.Addr, be: b.list(be.ID)})
			listed[be.ID] = true
		}
		l.pool.Store(p)
	}
	for port, l := range b.listeners {
		if _, ok := want[port]; !ok {
			b.withdraw(l)
		}
	}
	b.unlistExcept(listed)
	return errors.Join(errs...)
}

// withdraw frees l's port and gives what it serves removeGrace to finish.
// The caller holds b.mu.
func (b *Balancer) withdraw(l *listener) {
	delete(b.listeners, l.port)
	b.winding[l] = struct{}{}
	l.wind()
	time.AfterFunc(removeGrace, func() {
		l.cut()
		b.mu.Lock()
		delete(b.winding, l)
		b.mu.Unlock()
	})
	b.log.Info("endpoint withdrawn", "endpoint", l.pool.Load().key, "port", l.port)
}

func (b *Balancer) listen(ep Endpoint) (*listener, error) {
	addr := net.JoinHostPort(b.host, strconv.Itoa(ep.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lb: %s: listen on %s: %w", ep.Key, addr, err)
	}
	l := &listener{b: b, protocol: ep.Protocol, port: ep.Port, ln: ln}
	l.pool.Store(&pool{key: ep.Key})
	switch ep.Protocol {
	case "tcp":
		l.serveTCP()
	default:
		l.serveHTTP()
	}
	b.log.Info("endpoint published", "endpoint", ep.Key, "addr", addr, "protocol", ep.Protocol)
	return l, nil
}

// Stats reports every endpoint, ordered by port.
func (b *Balancer) Stats() []EndpointStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]EndpointStats, 0, len(b.listeners))
	for _, l := range b.listeners {
		p := l.pool.Load()
		st := EndpointStats{
			Key: p.key, Port: l.port, Protocol: l.protocol,
			Requests: l.requests.Load(), Failures: l.failures.Load(),
			Active: make(map[string]int64, len(p.members)),
		}
		for _, m := range p.members {
			st.Active[m.be.id] = m.be.inflight.Load()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

// Close frees every port and cuts every request and connection in flight,
// those of withdrawn ports included; later Updates fail. The graceful way
// out is Update and Drain.
func (b *Balancer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for port, l := range b.listeners {
		l.cut()
		delete(b.listeners, port)
	}
	for l := range b.winding {
		l.cut()
		delete(b.winding, l)
	}
	b.unlistExcept(nil)
	return nil
}
