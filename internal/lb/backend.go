package lb

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// backend is the balancer's view of one instance, shared by every endpoint
// that lists it.
type backend struct {
	id       string
	inflight atomic.Int64 // requests and connections
	// listed is cleared by Update when no endpoint lists the backend any
	// more. A request raises inflight before it reads listed, and Drain reads
	// inflight after Update cleared listed, so a request either sees the
	// removal and goes elsewhere or Drain sees the request.
	listed    atomic.Bool
	transport *http.Transport // its own keep-alive pool, closed on retirement
	// restUntil (unix nanoseconds, 0: never failed) keeps a backend that
	// refused a connection out of the choice for a while: the least loaded
	// backend is otherwise always the dead one, and every request would pay
	// a failed dial before its retry.
	restUntil atomic.Int64

	mu    sync.Mutex
	idle  chan struct{}         // closed when inflight reaches zero; made by a waiting Drain
	conns map[net.Conn]struct{} // the transport's connections, to close them on retirement
}

func (b *Balancer) newBackend(id string) *backend {
	be := &backend{id: id, conns: map[net.Conn]struct{}{}}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	be.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return be.track(c), nil
		},
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The client's own Accept-Encoding goes through untouched; the
		// transport must not add gzip and inflate answers on its own.
		DisableCompression: true,
	}
	return be
}

// list returns the backend for id, creating it, and marks it listed. The
// caller holds b.mu.
func (b *Balancer) list(id string) *backend {
	b.bmu.Lock()
	defer b.bmu.Unlock()
	be, ok := b.backends[id]
	if !ok {
		be = b.newBackend(id)
		b.backends[id] = be
	}
	be.listed.Store(true)
	return be
}

// unlistExcept clears listed on every backend not in keep and retires those
// already idle; the others retire when their last request ends.
func (b *Balancer) unlistExcept(keep map[string]bool) {
	var idle []*backend
	b.bmu.Lock()
	for id, be := range b.backends {
		if keep[id] || !be.listed.Load() {
			continue
		}
		be.listed.Store(false)
		if be.inflight.Load() == 0 {
			idle = append(idle, be)
		}
	}
	b.bmu.Unlock()
	for _, be := range idle {
		b.retire(be)
	}
}

// retire forgets a backend that is unlisted and idle, and closes its
// keep-alive connections: nothing uses them, and an instance on its way out
// should not have to wait for them.
func (b *Balancer) retire(be *backend) {
	b.bmu.Lock()
	if be.listed.Load() || be.inflight.Load() != 0 {
		b.bmu.Unlock()
		return
	}
	if b.backends[be.id] == be {
		delete(b.backends, be.id)
	}
	b.bmu.Unlock()
	be.transport.CloseIdleConnections()
	// A connection whose last answer just ended may not be back in the idle
	// pool yet; with nothing in flight, closing it under the transport is safe.
	be.mu.Lock()
	conns := be.conns
	be.conns = map[net.Conn]struct{}{}
	be.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// acquire counts a request to be and reports whether be may still take it.
// On false the count is already undone.
func (b *Balancer) acquire(be *backend) bool {
	be.inflight.Add(1)
	if be.listed.Load() {
		return true
	}
	b.release(be)
	return false
}

// release ends a request counted by acquire.
func (b *Balancer) release(be *backend) {
	if be.inflight.Add(-1) != 0 {
		return
	}
	be.mu.Lock()
	if be.idle != nil && be.inflight.Load() == 0 {
		close(be.idle)
		be.idle = nil
	}
	be.mu.Unlock()
	if !be.listed.Load() {
		b.retire(be)
	}
}

// Drain returns nil once no request or connection is in flight to the
// backend backendID, or ctx.Err() when ctx ends first. Callers remove the
// backend with Update first, so that nothing new reaches it; a backend the
// balancer does not know has nothing in flight.
func (b *Balancer) Drain(ctx context.Context, backendID string) error {
	b.bmu.Lock()
	be := b.backends[backendID]
	b.bmu.Unlock()
	if be == nil {
		return nil
	}
	for {
		be.mu.Lock()
		if be.inflight.Load() == 0 {
			be.mu.Unlock()
			return nil
		}
		if be.idle == nil {
			be.idle = make(chan struct{})
		}
		idle := be.idle
		be.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-idle:
			// A request may have started in the meantime (the backend is
			// still listed, against the contract): look again.
		}
	}
}

// pick chooses the backend with the fewest requests in flight, skipping
// those in tried, and counts the request on it; equally loaded backends take
// turns. The caller releases the backend when the request ends.
func (l *listener) pick(tried map[*backend]bool) (member, bool) {
	p := l.pool.Load()
	start := l.next.Add(1)
	var now int64
	skipResting := true
	for {
		best, bestLoad := -1, int64(0)
		n := len(p.members)
		for i := range n {
			j := int((start + uint64(i)) % uint64(n))
			be := p.members[j].be
			if tried[be] || !be.listed.Load() || skipResting && be.resting(&now) {
				continue
			}
			if load := be.inflight.Load(); best < 0 || load < bestLoad {
				best, bestLoad = j, load
			}
		}
		if best >= 0 {
			m := p.members[best]
			if l.b.acquire(m.be) {
				return m, true
			}
			if tried == nil {
				tried = map[*backend]bool{}
			}
			tried[m.be] = true
			continue
		}
		if skipResting {
			// Every backend failed lately: one of them may be back.
			skipResting = false
			continue
		}
		// Update stores the new pools before it unlists anything, so a
		// request that met an unlisted backend finds its replacement here.
		q := l.pool.Load()
		if q == p {
			return member{}, false
		}
		p, skipResting = q, true
	}
}

// restAfterFailure is how long a backend that could not be dialled is
// passed over while others can take the request; the controller's health
// probes, not the balancer, decide whether it is gone.
const restAfterFailure = time.Second

// failed records that be could not be reached.
func (be *backend) failed() {
	be.restUntil.Store(time.Now().Add(restAfterFailure).UnixNano())
}

// reached records that be answered.
func (be *backend) reached() {
	if be.restUntil.Load() != 0 {
		be.restUntil.Store(0)
	}
}

// resting reports whether be failed recently; now caches the clock for one pick.
func (be *backend) resting(now *int64) bool {
	until := be.restUntil.Load()
	if until == 0 {
		return false
	}
	if *now == 0 {
		*now = time.Now().UnixNano()
	}
	return until > *now
}

// track remembers a transport connection until it closes.
func (be *backend) track(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, be: be}
	be.mu.Lock()
	be.conns[tc] = struct{}{}
	be.mu.Unlock()
	return tc
}

type trackedConn struct {
	net.Conn
	be   *backend
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.be.mu.Lock()
		delete(c.be.conns, c)
		c.be.mu.Unlock()
	})
	return c.Conn.Close()
}

var _ net.Conn = (*trackedConn)(nil)
