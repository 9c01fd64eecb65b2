package storage

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
)

// NewForward serves a service by passing each request to the storage of
// the server at the base URL target returns (the primary of a replicated
// storage), streaming both ways; "" or a server that cannot be reached
// answers 503 ServerBusy, which the SDKs retry. Metadata names keep the
// case the client wrote them in.
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
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardKey{}, to)))
	})
}

type forwardKey struct{}
