package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/storage/replicated"
)

// metricsHandler is the controller's GET /metrics: the metrics of its
// parts (fabric, Raft store, load balancer, and when storage runs here the
// storage and its replication, node), in one registry of its own.
func (c *controller) metricsHandler(node *replicated.Node) (http.Handler, error) {
	reg := metrics.NewRegistry()
	parts := []interface {
		Register(prometheus.Registerer) error
	}{c.ctl, c.store, c.lb}
	if c.storage != nil {
		parts = append(parts, c.storage)
	}
	if node != nil {
		parts = append(parts, node)
	}
	for _, p := range parts {
		if err := p.Register(reg); err != nil {
			return nil, err
		}
	}
	return metrics.Handler(reg), nil
}
