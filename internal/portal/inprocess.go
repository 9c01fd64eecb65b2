package portal

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
)

// inProcess is an http.RoundTripper that serves each request with the
// server's own API handler, in this process: the request goes through the
// same authentication, access table and forwarding to the leader as one
// from the network, carrying the browser's address as its RemoteAddr (what
// the audit log records). Answers stream: the handler writes into a pipe
// the caller reads, so event streams and logs flow as they are written.
type inProcess struct {
	api    http.Handler
	remote string // the browser's address
}

var _ http.RoundTripper = inProcess{}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	// The request as a server receives it: a path, not an absolute URL.
	sreq := req.Clone(ctx)
	sreq.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	sreq.RequestURI = sreq.URL.RequestURI()
	sreq.RemoteAddr = t.remote
	sreq.Host = req.URL.Host
	sreq.TLS = nil
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			if v := recover(); v != nil {
				pw.CloseWithError(fmt.Errorf("portal: the API handler panicked: %v", v))
				w.commit(http.StatusInternalServerError)
				return
			}
			w.commit(http.StatusOK)
			pw.Close()
		}()
		t.api.ServeHTTP(w, sreq)
	}()
	select {
	case <-w.ready:
	case <-ctx.Done():
		pr.CloseWithError(ctx.Err())
		cancel()
		return nil, ctx.Err()
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.sent, ContentLength: -1, Request: req,
		Body: &pipeBody{PipeReader: pr, cancel: cancel},
	}, nil
}

// pipeWriter is the handler's http.ResponseWriter: headers are handed
// over when it writes its status (or first byte, or returns), the body
// through the pipe.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
	status int
	sent   http.Header
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(status int) {
	if status < 200 {
		return // informational answers are not passed on
	}
	w.commit(status)
}

func (w *pipeWriter) commit(status int) {
	w.once.Do(func() {
		w.status, w.sent = status, w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.commit(http.StatusOK)
	return w.pw.Write(p)
}

// Flush does nothing: every Write already waits for the reader.
func (w *pipeWriter) Flush() {}

// pipeBody ends the handler's request when the caller closes the answer.
type pipeBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b *pipeBody) Close() error {
	b.cancel()
	return b.PipeReader.Close()
}
