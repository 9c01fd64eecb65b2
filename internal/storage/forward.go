package storage

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// forwardRecheck is how often a forwarded request in flight checks that
// its server is still the one target names.
const forwardRecheck = 250 * time.Millisecond

// NewForward serves a service by passing each request to the storage of
// the server at the base URL target returns (the primary of a replicated
// storage), streaming both ways; "" or a server that cannot be reached
// answers 503 ServerBusy, which the SDKs retry. A request in flight is
// given up with a 503 (or, once its answer has begun, cut short) when
// target names another server: a primary that was cut off may never
// answer, and the SDKs set no time limit on a try. Metadata names keep
// the case the client wrote them in.
func NewForward(svc Service, target func() string, logger *slog.Logger) http.Handler {
	busy := func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, svc, Errorf(http.StatusServiceUnavailable, "ServerBusy", "The storage service is changing servers; retry."))
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u, _ := url.Parse(pr.In.Context().Value(forwardKey{}).(string))
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // path-style URLs and signatures do not depend on it; logs do
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if cause := context.Cause(r.Context()); errors.Is(cause, errTargetMoved) {
				err = cause
			}
			logger.Warn("storage: forwarding failed", "service", svc, "err", err)
			busy(w, r)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := target()
		if to == "" {
			busy(w, r)
			return
		}
		rawNames(r)
		ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), forwardKey{}, to))
		defer cancel(nil)
		go func() {
			tick := time.NewTicker(forwardRecheck)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if target() != to {
						cancel(errTargetMoved)
						return
					}
				}
			}
		}()
		proxy.ServeHTTP(w, r.WithContext(ctx))
	})
}

type forwardKey struct{}

var errTargetMoved = errors.New("storage: the storage to forward to moved to another server")
