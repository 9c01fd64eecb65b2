package replicated

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	lagOpsDesc   = prometheus.NewDesc("weft_storage_replica_lag_ops", "Changes the primary logged that a replica has not acknowledged, by replica (on the primary only).", []string{"replica", "in_sync"}, nil)
	lagBytesDesc = prometheus.NewDesc("weft_storage_replica_lag_bytes", "Bytes of changes queued for a replica, by replica (on the primary only).", []string{"replica", "in_sync"}, nil)
	primaryDesc  = prometheus.NewDesc("weft_storage_primary", "1 while this server's storage is the primary, else 0.", nil, nil)
)

// collector reads the replicas' lag at each scrape.
type collector struct{ n *Node }

var _ prometheus.Collector = collector{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagOpsDesc
	ch <- lagBytesDesc
	ch <- primaryDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.n.mu.Lock()
	sh := c.n.shipper
	c.n.mu.Unlock()
	primary := 0.0
	if sh != nil {
		primary = 1
		for name, lag := range sh.Lag() {
			inSync := strconv.FormatBool(lag.InSync)
			ch <- prometheus.MustNewConstMetric(lagOpsDesc, prometheus.GaugeValue, float64(lag.Ops), name, inSync)
			ch <- prometheus.MustNewConstMetric(lagBytesDesc, prometheus.GaugeValue, float64(lag.Bytes), name, inSync)
		}
	}
	ch <- prometheus.MustNewConstMetric(primaryDesc, prometheus.GaugeValue, primary)
}

// Register adds the node's metrics to reg: whether it is the primary,
// and there each replica's lag.
func (n *Node) Register(reg prometheus.Registerer) error {
	if err := reg.Register(collector{n}); err != nil {
		return fmt.Errorf("replicated: register metrics: %w", err)
	}
	return nil
}
