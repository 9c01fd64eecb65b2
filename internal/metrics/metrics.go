// Package metrics is the wiring of Weft's Prometheus metrics: the
// registry a process's parts register their collectors in, and the handler
// that serves it at /metrics. It holds no metric itself: each part (the
// fabric, the load balancer, the Raft store, the storage, the agent)
// defines and registers its own, next to the code it measures, into the
// registry it is given, so tests use registries of their own.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where every Weft process serves its metrics.
const Path = "/metrics"

// NewRegistry returns a registry holding the Go runtime's and the
// process's collectors, for the parts of one process to register theirs.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus exposition format. Who may call it
// is for the caller's stack to decide (the access table on a server, the
// agent's token, the storage's own listener).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}
