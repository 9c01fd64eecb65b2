package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// serveTCP splices each accepted connection to a backend.
func (l *listener) serveTCP() {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		cut   bool
	)
	go func() {
		var backoff time.Duration
		for {
			c, err := l.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// Out of file descriptors and the like: wait, as
				// http.Server does, instead of giving up the port.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				l.b.log.Warn("accept failed", "port", l.port, "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return
				}
				continue
			}
			backoff = 0
			l.requests.Add(1)
			mu.Lock()
			if cut {
				mu.Unlock()
				c.Close()
				continue
			}
			conns[c] = struct{}{}
			mu.Unlock()
			go func() {
				l.splice(ctx, c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	l.cut = func() {
		l.ln.Close()
		cancel()
		mu.Lock()
		defer mu.Unlock()
		cut = true
		for c := range conns {
			c.Close()
		}
	}
	l.wind = func() { l.ln.Close() }
}

// splice connects client to a backend, trying the next one when a dial
// fails, and copies until both directions are done.
func (l *listener) splice(ctx context.Context, client net.Conn) {
	defer client.Close()
	var tried map[*backend]bool
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	for {
		m, ok := l.pick(tried)
		if !ok {
			l.failures.Add(1)
			return
		}
		conn, err := dialer.DialContext(ctx, "tcp", m.addr)
		if err != nil {
			l.b.release(m.be)
			m.be.failed()
			l.b.log.Debug("backend unreachable", "endpoint", l.pool.Load().key, "backend", m.be.id, "err", err)
			if tried == nil {
				tried = map[*backend]bool{}
			}
			tried[m.be] = true
			continue
		}
		m.be.reached()
		pipe(client, conn, l.b.counter(l.pool.Load().key))
		conn.Close()
		l.b.release(m.be)
		return
	}
}

// pipe copies both ways, passing each side's end of stream on as a
// half-close, until both directions ended, and adds the bytes copied to
// bytes as each direction ends. An error in either direction (a reset, a
// cut) closes both connections, so the other copy ends as well.
func pipe(a, b net.Conn, bytes *atomic.Int64) {
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		n, err := io.Copy(dst, src)
		bytes.Add(n)
		cw, ok := dst.(interface{ CloseWrite() error })
		if err != nil || !ok {
			a.Close()
			b.Close()
			return
		}
		cw.CloseWrite()
	}
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
}
