package storageserver

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/storage"
)

// figures are the storage services' Prometheus metrics, per service and
// operation, observed at each service's listener: what the services here
// answer, what they forward to another server, and the 503s while neither.
type figures struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	group    *prometheus.HistogramVec
	fsync    *prometheus.HistogramVec
}

func newFigures() *figures {
	so := []string{"service", "operation"}
	return &figures{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_storage_requests_total", Help: "Storage requests answered, by service, operation and HTTP status.",
		}, append(so, "status")),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_storage_errors_total", Help: "Storage requests answered with an error, by service, operation and Azure error code (x-ms-error-code).",
		}, append(so, "code")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_storage_request_duration_seconds", Help: "Time from a storage request's arrival to the end of its answer, by service and operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14),
		}, so),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_storage_bytes_total", Help: "Bytes of storage request and answer bodies, by service and direction (in, out).",
		}, []string{"service", "direction"}),
		group: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_boltlog_group_writes", Help: "Writes one log sync made durable together, by database (blob, queue, table).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 to 512, the largest group
		}, []string{"db"}),
		fsync: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_boltlog_fdatasync_duration_seconds", Help: "Time one fdatasync of a database's log took, by database.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"db"}),
	}
}

// synced is the boltlog.Options.Synced of database db.
func (f *figures) synced(db string) func(int, time.Duration) {
	group, fsync := f.group.WithLabelValues(db), f.fsync.WithLabelValues(db)
	return func(writes int, took time.Duration) {
		group.Observe(float64(writes))
		fsync.Observe(took.Seconds())
	}
}

// Register adds the storage's metrics to reg: requests by status, errors
// by code, latency and bytes, per service and operation; and each open
// database's write groups and fdatasync latency.
func (s *Server) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.figures.requests, s.figures.errors, s.figures.latency, s.figures.bytes, s.figures.group, s.figures.fsync} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("storageserver: register metrics: %w", err)
		}
	}
	return nil
}

// listenMetrics listens on addr, which must be a loopback address, and
// adds the server that answers GET /metrics there to s.servers.
func (s *Server) listenMetrics(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("storageserver: metrics address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("storageserver: metrics address %s is not a loopback address: the storage alone has no credentials to guard its metrics with", addr)
	}
	reg := metrics.NewRegistry()
	if err := s.Register(reg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("storageserver: listen for metrics: %w", err)
	}
	s.metricsURL = "http://" + ln.Addr().String() + metrics.Path
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, metrics.Handler(reg))
	s.servers = append(s.servers, &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second})
	return ln, nil
}

// MetricsURL is where GET /metrics answers, "" without
// Config.MetricsListen.
func (s *Server) MetricsURL() string { return s.metricsURL }

// instrument counts what h answers for svc.
func (f *figures) instrument(svc storage.Service, h http.Handler) http.Handler {
	in := f.bytes.WithLabelValues(string(svc), "in")
	out := f.bytes.WithLabelValues(string(svc), "out")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		op := operation(r)
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		body := &countingBody{ReadCloser: r.Body}
		r.Body = body
		h.ServeHTTP(rec, r)
		f.latency.WithLabelValues(string(svc), op).Observe(time.Since(start).Seconds())
		f.requests.WithLabelValues(string(svc), op, strconv.Itoa(rec.status)).Inc()
		if rec.status >= 400 {
			code := rec.Header().Get("x-ms-error-code")
			if code == "" {
				code = "none"
			}
			f.errors.WithLabelValues(string(svc), op, code).Inc()
		}
		in.Add(float64(body.n))
		out.Add(float64(rec.n))
	})
}

// operation names a request by its method and the restype and comp of its
// query, e.g. "PUT block" or "GET container list": only known values, so
// that callers cannot make the label's values grow without bound.
func operation(r *http.Request) string {
	op := r.Method
	switch op {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodOptions, http.MethodPatch, "MERGE":
	default:
		op = "OTHER"
	}
	q := r.URL.Query()
	if rt := q.Get("restype"); knownRestypes[rt] {
		op += " " + rt
	}
	if comp := q.Get("comp"); knownComps[comp] {
		op += " " + comp
	}
	return op
}

var (
	knownRestypes = map[string]bool{"container": true, "service": true, "account": true}
	knownComps    = map[string]bool{
		"list": true, "block": true, "blocklist": true, "metadata": true, "properties": true, "acl": true, "lease": true,
		"snapshot": true, "appendblock": true, "page": true, "pagelist": true, "copy": true, "tags": true, "stats": true,
		"batch": true, "undelete": true, "tier": true, "incrementalcopy": true, "userdelegationkey": true,
		"expiry": true, "query": true,
	}
)

// recorder keeps the status and counts the bytes of an answer.
type recorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.ResponseWriter.Write(p)
	r.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush passes on, for answers that stream.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
