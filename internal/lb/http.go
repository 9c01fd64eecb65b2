package lb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

var errNoBackend = errors.New("lb: no backend")

// copyBuffers spares every proxied answer a fresh 32 KiB copy buffer.
var copyBuffers httputil.BufferPool = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// serveHTTP reverse-proxies the listener's requests.
func (l *listener) serveHTTP() {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The client's own X-Forwarded-* are dropped: they would let
			// anyone claim any address.
			pr.SetXForwarded()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "backend" // chosen per attempt by the retrier
			pr.Out.Host = pr.In.Host
		},
		Transport:     &retrier{l: l},
		FlushInterval: -1, // stream as the backend writes (server-sent events, logs)
		ErrorHandler:  l.proxyError,
		BufferPool:    copyBuffers,
		ErrorLog:      slog.NewLogLogger(l.b.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.requests.Add(1)
			start := time.Now()
			proxy.ServeHTTP(w, r)
			l.b.figures.observe(l.pool.Load().key, start)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(l.b.log.Handler(), slog.LevelDebug),
		// Cancelling this context ends upgraded connections too, which
		// http.Server.Close does not track.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	go srv.Serve(countingListener{Listener: l.ln, l: l})
	l.cut = func() {
		l.ln.Close() // Close does it too, but only once Serve has started
		srv.Close()
		cancel()
	}
	l.wind = func() {
		l.ln.Close()
		go srv.Shutdown(context.Background()) // returns when idle, or when cut
	}
}

// proxyError answers for the balancer when no backend answered.
func (l *listener) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	key := l.pool.Load().key
	if errors.Is(err, errNoBackend) {
		l.failures.Add(1)
		http.Error(w, "weft: no healthy instance of "+key, http.StatusServiceUnavailable)
		return
	}
	if r.Context().Err() != nil {
		return // the client left; nobody reads an answer
	}
	l.failures.Add(1)
	// The detail names internal addresses: it goes to the log, not the client.
	l.b.log.Warn("proxy failed", "endpoint", key, "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "weft: no instance of "+key+" could answer", http.StatusBadGateway)
}

// retrier sends a request to a backend, and to another one when the first
// could not be reached and resending is safe.
type retrier struct {
	l *listener
}

func (t *retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	var body *retryBody
	if req.Body != nil && req.Body != http.NoBody {
		// The server closes the real body when the handler returns.
		body = &retryBody{ReadCloser: req.Body, left: req.ContentLength}
	}
	var tried map[*backend]bool
	lastErr := errNoBackend
	sentOnce := false // a non-dial failure was already retried
	for {
		m, ok := t.l.pick(tried)
		if !ok {
			return nil, lastErr
		}
		out := *req
		u := *req.URL
		u.Host = m.addr
		out.URL = &u
		if body != nil {
			out.Body = body
			// Lets the transport itself resend on a fresh connection when a
			// kept-alive one turned out dead before anything was written.
			out.GetBody = body.again
		}
		resp, err := m.be.transport.RoundTrip(&out)
		if err == nil {
			m.be.reached()
			resp.Body = releaseOnClose(resp, func() { t.l.b.release(m.be) })
			return resp, nil
		}
		t.l.b.release(m.be)
		if req.Context().Err() != nil {
			return nil, err
		}
		dial := isDialError(err)
		if dial {
			m.be.failed()
		}
		switch {
		case dial && (body == nil || !body.touched.Load()):
			// Nothing was sent: any request may go elsewhere.
		case !dial && !sentOnce && body == nil && idempotent(req.Method):
			// Perhaps sent, perhaps half answered by an instance that
			// died: a safe request gets one more try.
			sentOnce = true
		default:
			return nil, err
		}
		lastErr = err
		if tried == nil {
			tried = map[*backend]bool{}
		}
		tried[m.be] = true
	}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// retryBody keeps a request's body usable for another backend after a
// failed dial: the transport closes the body it was given even when it
// never read it. Once read, it is the transport's to close.
type retryBody struct {
	io.ReadCloser
	touched atomic.Bool
	// left is what remains of a body of known length (-1: unknown). Once
	// it is all read, the transport's last Read, which looks for the end,
	// is answered here: the server may already have closed the incoming
	// body (its handler got the backend's answer), and a failed Read would
	// make the transport drop the connection the answer is arriving on.
	left int64
}

func (b *retryBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	return n, err
}

var errBodyRead = errors.New("lb: request body already sent")

func (b *retryBody) again() (io.ReadCloser, error) {
	if b.touched.Load() {
		return nil, errBodyRead
	}
	return b, nil
}

func (b *retryBody) Close() error {
	if !b.touched.Load() {
		return nil
	}
	return b.ReadCloser.Close()
}

// releaseOnClose wraps a response body so that the backend's request ends
// when the proxy is done with the answer. A 101 answer's body is the
// upgraded connection, which the proxy writes to as well.
func releaseOnClose(resp *http.Response, release func()) io.ReadCloser {
	rb := &releasingBody{ReadCloser: resp.Body, release: release}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		return &releasingConn{releasingBody: rb, w: rw}
	}
	return rb
}

type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

type releasingConn struct {
	*releasingBody
	w io.Writer
}

func (c *releasingConn) Write(p []byte) (int, error) { return c.w.Write(p) }

var (
	_ http.RoundTripper   = (*retrier)(nil)
	_ io.ReadCloser       = (*retryBody)(nil)
	_ io.ReadWriteCloser  = (*releasingConn)(nil)
	_ httputil.BufferPool = (*bufferPool)(nil)
)
