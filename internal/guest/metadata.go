package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// The instance metadata service inside a VM. The guest agent listens on
// the guest's loopback (Options.MetadataListen) and hands each request to
// the host over the port (OpHTTP); the node agent answers it as the
// instance whose port it came in on, so the channel, not a token, says
// who asks, and nothing in the guest can ask as another instance. The
// workload and every exec find the address in WEFT_METADATA.

// DefaultMetadataListen is where the guest's metadata service listens.
const DefaultMetadataListen = "127.0.0.1:169"

// envMetadata is api.EnvMetadata (the guest package keeps to the
// standard library and its own protocol).
const envMetadata = "WEFT_METADATA"

const (
	// maxMetadataBody bounds a request's body and an answer's.
	maxMetadataBody = 64 << 10
	// metadataTimeout bounds how long a request waits for the host.
	metadataTimeout = 10 * time.Second
)

// hostCalls are the guest's requests waiting for the host's answers, and
// the connection they go out on.
type hostCalls struct {
	mu      sync.Mutex
	conn    *lineWriter // nil while the port is closed
	next    int64
	waiting map[int64]chan request
}

func (h *hostCalls) setConn(w *lineWriter) {
	h.mu.Lock()
	h.conn = w
	h.mu.Unlock()
}

// clearConn forgets w if it is still the connection.
func (h *hostCalls) clearConn(w *lineWriter) {
	h.mu.Lock()
	if h.conn == w {
		h.conn = nil
	}
	h.mu.Unlock()
}

// reply hands the host's answer to the request waiting for it.
func (h *hostCalls) reply(req request) {
	h.mu.Lock()
	ch, ok := h.waiting[req.Call]
	delete(h.waiting, req.Call)
	h.mu.Unlock()
	if ok {
		ch <- req
	}
}

// ServeHTTP hands a request to the host and writes its answer.
func (h *hostCalls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMetadataBody))
	if err != nil {
		http.Error(w, "the body is too large", http.StatusRequestEntityTooLarge)
		return
	}
	msg := response{Op: OpHTTP, OK: true, Method: r.Method, URL: r.URL.RequestURI(), Body: body, Header: map[string]string{}}
	for k := range r.Header {
		msg.Header[k] = r.Header.Get(k)
	}
	ch := make(chan request, 1)
	h.mu.Lock()
	h.next++
	msg.Call = h.next
	conn := h.conn
	if h.waiting == nil {
		h.waiting = map[int64]chan request{}
	}
	h.waiting[msg.Call] = ch
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.waiting, msg.Call)
		h.mu.Unlock()
	}()
	if conn == nil || conn.write(msg) != nil {
		http.Error(w, "the host cannot be reached", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), metadataTimeout)
	defer cancel()
	select {
	case rep := <-ch:
		for k, v := range rep.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.Status)
		w.Write(rep.Body)
	case <-ctx.Done():
		http.Error(w, "the host did not answer", http.StatusGatewayTimeout)
	}
}

// serveMetadata serves the metadata service on ln until ctx ends.
func (a *Agent) serveMetadata(ctx context.Context, ln net.Listener) {
	srv := &http.Server{Handler: &a.calls, ReadHeaderTimeout: 10 * time.Second}
	context.AfterFunc(ctx, func() { srv.Close() })
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Warn("metadata service", "err", err)
	}
}

// listenMetadata opens the metadata service's listener; the address
// goes into the environment of what the agent runs.
func (a *Agent) listenMetadata(ctx context.Context) {
	if a.opts.MetadataListen == "" || a.opts.MetadataListen == "none" {
		return
	}
	a.listenMetadataOn(ctx, a.opts.MetadataListen)
}

// listenMetadataOn serves the metadata service on addr, the address in
// WEFT_METADATA from then on. Not 169.254.169.254:80 as in containers: the
// guest has no packet filter to redirect that port, and a listener on it
// would make a web server's bind of 0.0.0.0:80 fail.
func (a *Agent) listenMetadataOn(ctx context.Context, addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		a.log.Warn("no metadata service", "listen", addr, "err", err)
		return
	}
	u := "http://" + ln.Addr().String()
	a.mdMu.Lock()
	a.mdURL = u
	a.mdMu.Unlock()
	go a.serveMetadata(ctx, ln)
}

// withMetadata is env with the guest's metadata address, when it has one,
// in place of the host's (which the guest may not reach).
func (a *Agent) withMetadata(env map[string]string) map[string]string {
	a.mdMu.Lock()
	u := a.mdURL
	a.mdMu.Unlock()
	if u == "" {
		return env
	}
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out[envMetadata] = u
	return out
}

// serveGuestHTTP answers one of the guest's requests with h and sends
// the answer back as an OpHTTPReply.
func (c *Client) serveGuestHTTP(h http.Handler, m response) {
	rep := request{Op: OpHTTPReply, Call: m.Call}
	ctx, cancel := context.WithTimeout(context.Background(), metadataTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, m.Method, m.URL, strings.NewReader(string(m.Body)))
	switch {
	case err != nil:
		rep.Status, rep.Body = http.StatusBadRequest, []byte(fmt.Sprintf("bad request: %v\n", err))
	case h == nil:
		rep.Status, rep.Body = http.StatusNotFound, []byte("this host serves the guest nothing\n")
	default:
		for k, v := range m.Header {
			r.Header.Set(k, v)
		}
		r.RemoteAddr = "guest"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		rep.Status, rep.Header = rec.Code, map[string]string{}
		for k := range rec.Header() {
			rep.Header[k] = rec.Header().Get(k)
		}
		body := rec.Body.Bytes()
		if len(body) > maxMetadataBody {
			body = body[:maxMetadataBody]
		}
		rep.Body = body
	}
	ch := make(chan response, 1)
	err = c.send(ctx, &rep, ch)
	c.forget(rep.ID)
	if err != nil {
		c.log.Debug("answer to the guest lost", "call", m.Call, "err", err)
	}
}

// ServeGuest makes h answer the requests the guest makes of the host (its
// metadata service's): they come with no credentials; whoever set h knows
// which guest this connection is. Without h they are answered 404.
func (c *Client) ServeGuest(h http.Handler) {
	c.mu.Lock()
	c.guestHandler = h
	c.mu.Unlock()
}
