package fabric

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// figures are the controller's Prometheus metrics. Events (passes,
// heartbeats, placements, moves) are counted where they happen; the
// cluster's shape (instances by state, nodes, upgrades) is read from the
// store at each scrape (collector), so every server shows it, leader or
// not.
type figures struct {
	reconcile  prometheus.Histogram
	locked     prometheus.Histogram
	conflicts  prometheus.Counter
	retried    prometheus.Counter // API writes of a service decided again (optimistic.go)
	failed     prometheus.Counter
	passes     *prometheus.CounterVec
	skipped    prometheus.Counter
	heartbeats *prometheus.CounterVec
	placed     prometheus.Counter
	moves      prometheus.Counter
	autoUps    prometheus.Counter
	pending    *prometheus.GaugeVec
	nodesDown  prometheus.Counter
	waveHeld   prometheus.Gauge
	wavePasses *prometheus.CounterVec
	lbSync     prometheus.Histogram
}

func newFigures() *figures {
	return &figures{
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_fabric_reconcile_duration_seconds", Help: "Time a reconcile pass took, its write to the store included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		locked: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_fabric_reconcile_locked_seconds", Help: "Time a reconcile pass held the controller's lock (its write, and its rerun after a conflict), which heartbeats and API calls wait for.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_reconcile_conflicts_total", Help: "Reconcile passes run again under the lock because what they read changed while they ran.",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_service_write_conflicts_total", Help: "API writes of a service (deploy, scale, rollback, delete) decided again because what they read was written meanwhile.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_reconcile_failures_total", Help: "Reconcile passes whose write to the store failed.",
		}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_fabric_reconcile_passes_total", Help: "Reconcile passes the controller's loop ran, by why (first, changed: the state moved, silence: a node's silence crossed its TTL or persistent grace, asked, timer: a timer of the last pass ended, or the safety tick).",
		}, []string{"why"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_reconcile_skipped_total", Help: "Ticks of the controller's loop that ran no reconcile pass: nothing written, no node silent past a limit, no timer due.",
		}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_fabric_heartbeats_total", Help: "Node heartbeats taken, by whether the node was known.",
		}, []string{"known"}),
		placed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_placements_total", Help: "Instances placed on a node.",
		}),
		moves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_rebalance_moves_total", Help: "Instances moved to another fault domain to spread their role.",
		}),
		autoUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_auto_upgrades_total", Help: "Roles the fabric moved onto a newer image of their family (autoUpgrade).",
		}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_fabric_instances_unplaceable", Help: "Instances the last reconcile pass could not place, by reason (placement.Why*).",
		}, []string{"reason"}),
		nodesDown: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_fabric_nodes_declared_down_total", Help: "Nodes reconcile passes declared down (silent past their TTL).",
		}),
		waveHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_fabric_down_wave_held_nodes", Help: "Nodes silent past their TTL that the last reconcile pass did not declare down, held back by the node-down wave guard.",
		}),
		wavePasses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_fabric_down_wave_passes_total", Help: "Reconcile passes in which the node-down wave guard was engaged, by mode (limited: declaring silent nodes down at a limited rate, halted: declaring none while nearly all are silent).",
		}, []string{"mode"}),
		lbSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_fabric_lb_sync_duration_seconds", Help: "Time a sync of the load balancer with the state took: listing every published endpoint's backends, and updating the balancer when they changed.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
	}
}

var (
	instancesDesc = prometheus.NewDesc("weft_fabric_instances", "Instances by state.", []string{"state"}, nil)
	nodesDesc     = prometheus.NewDesc("weft_fabric_nodes", "Nodes by state (ready, down, draining).", []string{"state"}, nil)
	silenceDesc   = prometheus.NewDesc("weft_fabric_node_heartbeat_age_seconds", "Time since this server last heard a node's heartbeat (only the leader hears them).", []string{"node"}, nil)
	upgradesDesc  = prometheus.NewDesc("weft_fabric_upgrades_in_progress", "Services in a rolling upgrade.", nil, nil)
	servicesDesc  = prometheus.NewDesc("weft_fabric_services", "Services by status (stable, upgrading, halted, deleting).", []string{"status"}, nil)
)

// collector reads the cluster's shape from the store at each scrape.
type collector struct{ c *Controller }

var _ prometheus.Collector = collector{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{instancesDesc, nodesDesc, silenceDesc, upgradesDesc, servicesDesc} {
		ch <- d
	}
}

func (col collector) Collect(ch chan<- prometheus.Metric) {
	c := col.c
	byState := map[string]int{api.StatePending: 0, api.StateStarting: 0, api.StateRunning: 0, api.StateStopping: 0, api.StateStopped: 0, api.StateFailed: 0}
	// Only the state of each record is decoded: a scrape reads every one.
	for _, in := range list[struct {
		State string `json:"state"`
	}](c.store, state.KindInstances, "") {
		byState[in.State]++
	}
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(n), st)
	}
	nodeStates := map[string]int{api.NodeReady: 0, api.NodeDown: 0, api.NodeDraining: 0}
	now := c.cfg.Clock()
	for _, n := range list[nodeRecord](c.store, state.KindNodes, "") {
		nodeStates[n.State]++
		if seen, ok := c.lastSeen(n.Name); ok {
			ch <- prometheus.MustNewConstMetric(silenceDesc, prometheus.GaugeValue, now.Sub(seen.at).Seconds(), n.Name)
		}
	}
	for st, n := range nodeStates {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), st)
	}
	statuses := map[string]int{api.ServiceStable: 0, api.ServiceUpgrading: 0, api.ServiceHalted: 0, api.ServiceDeleting: 0}
	for _, svc := range list[serviceRecord](c.store, state.KindServices, "") {
		statuses[svc.Status]++
	}
	for st, n := range statuses {
		ch <- prometheus.MustNewConstMetric(servicesDesc, prometheus.GaugeValue, float64(n), st)
	}
	ch <- prometheus.MustNewConstMetric(upgradesDesc, prometheus.GaugeValue, float64(statuses[api.ServiceUpgrading]))
}

// observePass records a pass that started at start, and the reasons of the
// instances it left unplaced.
func (f *figures) observePass(start time.Time, err error, unplaced map[string]int) {
	f.reconcile.Observe(time.Since(start).Seconds())
	if err != nil {
		f.failed.Inc()
		return
	}
	f.pending.Reset()
	for why, n := range unplaced {
		f.pending.WithLabelValues(why).Set(float64(n))
	}
}

// Register adds the controller's metrics to reg: the reconcile pass's
// duration, time under the lock, conflicts and failures, API writes of
// services decided again, passes run and
// skipped, heartbeats, placements, rebalance moves,
// auto-upgrades,
// unplaceable instances by reason, nodes declared down, the node-down
// wave guard's held nodes and passes, and instances, nodes and services by state.
func (c *Controller) Register(reg prometheus.Registerer) error {
	f := c.figures
	for _, col := range []prometheus.Collector{collector{c}, f.reconcile, f.locked, f.conflicts, f.retried, f.failed, f.passes, f.skipped, f.heartbeats, f.placed, f.moves, f.autoUps, f.pending, f.nodesDown, f.waveHeld, f.wavePasses, f.lbSync} {
		if err := reg.Register(col); err != nil {
			return fmt.Errorf("fabric: register metrics: %w", err)
		}
	}
	return nil
}
