package lb

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// figures are the balancer's Prometheus figures. The counts Stats reports
// are read at each scrape (collector); the latency is observed per request.
type figures struct {
	latency *prometheus.HistogramVec
}

func newFigures() *figures {
	return &figures{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_lb_request_duration_seconds",
			Help:    "Time from an HTTP request's arrival at the balancer to the end of its answer, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12), // 1 ms to about 1 min
		}, []string{"endpoint"}),
	}
}

func (m *figures) observe(endpoint string, start time.Time) {
	m.latency.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
}

var (
	labels                             = []string{"endpoint", "port", "protocol"}
	requestsDesc                       = prometheus.NewDesc("weft_lb_requests_total", "Requests (HTTP) or connections (TCP) accepted.", labels, nil)
	failuresDesc                       = prometheus.NewDesc("weft_lb_failures_total", "Requests answered 502 or 503 by the balancer, or connections it could not place.", labels, nil)
	backendDesc                        = prometheus.NewDesc("weft_lb_backend_in_flight", "Requests or connections in flight to a backend.", append(labels[:3:3], "backend"), nil)
	endpointsDesc                      = prometheus.NewDesc("weft_lb_endpoints", "Public ports the balancer serves.", nil, nil)
	_             prometheus.Collector = collector{}
)

// collector reads Stats at each scrape.
type collector struct{ b *Balancer }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- failuresDesc
	ch <- backendDesc
	ch <- endpointsDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	stats := c.b.Stats()
	ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(len(stats)))
	for _, st := range stats {
		lv := []string{st.Key, strconv.Itoa(st.Port), st.Protocol}
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(st.Requests), lv...)
		ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, float64(st.Failures), lv...)
		for id, n := range st.Active {
			ch <- prometheus.MustNewConstMetric(backendDesc, prometheus.GaugeValue, float64(n), append(lv, id)...)
		}
	}
}

// Register adds the balancer's metrics to reg: requests, failures and
// in-flight requests per endpoint and backend, and the HTTP latency.
func (b *Balancer) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{collector{b}, b.figures.latency} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("lb: register metrics: %w", err)
		}
	}
	return nil
}
