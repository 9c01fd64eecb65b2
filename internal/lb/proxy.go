package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

var errNoBackend = errors.New("no healthy instance")

// serveHTTP reverse-proxies the listener's requests.
func (l *listener) serveHTTP() {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "backend" // chosen per attempt by the retrier
			pr.Out.Host = pr.In.Host
		},
		Transport:     &retrier{l: l, rt: transport},
		FlushInterval: -1, // stream as the backend writes (server-sent events, logs)
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			l.failures.Add(1)
			if errors.Is(err, errNoBackend) {
				http.Error(w, "weft: "+l.key+": no healthy instance to serve this request", http.StatusServiceUnavailable)
				return
			}
			if r.Context().Err() != nil {
				return // the client left
			}
			l.b.log.Warn("proxy failed", "endpoint", l.key, "err", err)
			http.Error(w, "weft: "+l.key+": "+err.Error(), http.StatusBadGateway)
		},
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.requests.Add(1)
			proxy.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go srv.Serve(l.ln)
	l.stop = func() {
		l.ln.Close() // free the port now; requests in flight finish below
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			transport.CloseIdleConnections()
		}()
	}
}

// retrier sends a request to a backend, and to another one when the first
// could not be reached before anything was sent.
type retrier struct {
	l  *listener
	rt http.RoundTripper
}

func (t *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	tried := map[string]bool{}
	var lastErr error = errNoBackend
	for {
		be, ok := t.l.pick(tried)
		if !ok {
			return nil, lastErr
		}
		tried[be.ID] = true
		inflight := t.l.b.counter(be.ID)
		inflight.Add(1)
		out := *req
		u := *req.URL
		u.Host = be.Addr
		out.URL = &u
		resp, err := t.rt.RoundTrip(&out)
		if err != nil {
			inflight.Add(-1)
			if retryable(req, err) && req.Context().Err() == nil {
				lastErr = err
				continue
			}
			return nil, err
		}
		resp.Body = &countedBody{ReadCloser: resp.Body, inflight: inflight}
		return resp, nil
	}
}

// retryable reports whether a failed attempt can go to another backend: a
// failed dial sent nothing; a request without a body that is safe to repeat
// can be sent again whatever happened.
func retryable(req *http.Request, err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	noBody := req.Body == nil || req.Body == http.NoBody
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return noBody
	}
	return false
}

// countedBody releases its backend's in-flight count when the answer is done.
type countedBody struct {
	io.ReadCloser
	inflight *atomic.Int64
	once     sync.Once
}

func (b *countedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.inflight.Add(-1) })
	return err
}

// serveTCP splices each accepted connection to a backend.
func (l *listener) serveTCP() {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	go func() {
		for {
			c, err := l.ln.Accept()
			if err != nil {
				return
			}
			l.requests.Add(1)
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			go func() {
				l.splice(c)
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	l.stop = func() {
		l.ln.Close()
		// Connections of a removed endpoint get a grace period, then are cut.
		time.AfterFunc(30*time.Second, func() {
			mu.Lock()
			defer mu.Unlock()
			for c := range conns {
				c.Close()
			}
		})
	}
}

func (l *listener) splice(client net.Conn) {
	defer client.Close()
	tried := map[string]bool{}
	for {
		be, ok := l.pick(tried)
		if !ok {
			l.failures.Add(1)
			return
		}
		tried[be.ID] = true
		inflight := l.b.counter(be.ID)
		inflight.Add(1)
		backend, err := net.DialTimeout("tcp", be.Addr, 2*time.Second)
		if err != nil {
			inflight.Add(-1)
			continue
		}
		pipe(client, backend)
		backend.Close()
		inflight.Add(-1)
		return
	}
}

// pipe copies both ways, passing each side's end of stream on as a half-close.
func pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
}
