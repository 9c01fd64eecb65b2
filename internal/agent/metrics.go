package agent

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/metrics"
)

// figures are the agent's Prometheus metrics: restarts and the latency of
// driver starts and health probes, observed as they happen; its instances
// by state, read at each scrape (collector).
type figures struct {
	restarts *prometheus.CounterVec
	start    *prometheus.HistogramVec
	probe    *prometheus.HistogramVec
	// driveServers counts drive servers (internal/driveproc) started,
	// adopted from an earlier agent, and found gone by a restarted one.
	driveServers *prometheus.CounterVec
	// vmRoutes counts the tellings of a VM's VPN routes (routeVMs).
	vmRoutes *prometheus.CounterVec
}

func newFigures() *figures {
	return &figures{
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_instance_restarts_total", Help: "Instances restarted in place (after an exit, a failed probe, a failed start or a reimage), by runtime.",
		}, []string{"runtime"}),
		start: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_agent_driver_start_duration_seconds", Help: "Time a driver took to start an instance, by runtime and result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10), // 10 ms to about 1 min
		}, []string{"runtime", "result"}),
		probe: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_agent_probe_duration_seconds", Help: "Time an instance's health probe took, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"result"}),
		driveServers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_drive_servers_total", Help: "Servers of process and container instances' drives started, adopted from an earlier agent, or found gone by a restarted agent (which then restarts the instance), by event (started, adopted, lost).",
		}, []string{"event"}),
		vmRoutes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_agent_vm_route_updates_total", Help: "Times a VM on a virtual network was given its network's VPN routes through its guest agent, by result (ok, error).",
		}, []string{"result"}),
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (f *figures) observeStart(runtime string, start time.Time, err error) {
	f.start.WithLabelValues(runtime, result(err)).Observe(time.Since(start).Seconds())
}

func (f *figures) observeProbe(start time.Time, err error) {
	f.probe.WithLabelValues(result(err)).Observe(time.Since(start).Seconds())
}

var instancesDesc = prometheus.NewDesc("weft_agent_instances", "Instances on this node by state.", []string{"state"}, nil)

type collector struct{ a *Agent }

var _ prometheus.Collector = collector{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- instancesDesc
	for _, d := range guestDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	byState := map[string]int{api.StatePending: 0, api.StateStarting: 0, api.StateRunning: 0, api.StateStopping: 0, api.StateStopped: 0, api.StateFailed: 0}
	c.a.mu.Lock()
	list := make([]*instance, 0, len(c.a.instances))
	for _, in := range c.a.instances {
		list = append(list, in)
	}
	c.a.mu.Unlock()
	for _, in := range list {
		byState[in.status().State]++
		in.collectGuestFigures(ch)
	}
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n), st)
	}
}

// registerMetrics makes the agent's registry: Config.Metrics, or one of its own.
func (a *Agent) registerMetrics() (*prometheus.Registry, error) {
	reg := a.cfg.Metrics
	if reg == nil {
		reg = metrics.NewRegistry()
	}
	for _, c := range []prometheus.Collector{collector{a}, rulesCollector{a.net}, vpnCollector{a.vpn}, a.figures.restarts, a.figures.start, a.figures.probe, a.figures.driveServers, a.figures.vmRoutes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("agent: register metrics: %w", err)
		}
	}
	return reg, nil
}

// addRestart counts a restart of in and returns how many it has had.
func (in *instance) addRestart() int {
	in.mu.Lock()
	in.restarts++
	n := in.restarts
	in.mu.Unlock()
	in.a.figures.restarts.WithLabelValues(in.drv.Name()).Inc()
	return n
}
