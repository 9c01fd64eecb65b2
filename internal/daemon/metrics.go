package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/internal/metrics"
)

// metricsHandler is the controller's GET /metrics: the metrics of its
// parts (fabric, Raft store, load balancer, and storage when it runs
// here), in one registry of its own.
func (c *controller) metricsHandler() (http.Handler, error) {
	reg := metrics.NewRegistry()
	parts := []interface {
		Register(prometheus.Registerer) error
	}{c.ctl, c.store, c.lb}
	if c.storage != nil {
		parts = append(parts, c.storage)
	}
	for _, p := range parts {
		if err := p.Register(reg); err != nil {
			return nil, err
		}
	}
	return metrics.Handler(reg), nil
}
