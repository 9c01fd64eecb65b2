package cli

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
)

func (a *app) topCommand() *cobra.Command {
	var once bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "top [--once] [--interval 2s]",
		Short: "Show a server's figures as they change: controller, Raft, load balancer, storage (the operator's; from GET /metrics)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return usagef("--interval: %s is not a positive duration", interval)
			}
			var prev scrape
			for {
				cur, err := a.scrapeMetrics(cmd)
				if err != nil {
					return err
				}
				if !once {
					fmt.Fprint(a.stdout, "\x1b[H\x1b[2J") // home, clear: a terminal redraws in place
				}
				if err := a.printTop(cur, prev); err != nil {
					return err
				}
				if once {
					return nil
				}
				prev = cur
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "print the figures once and exit (totals since each process started)")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between refreshes; rates are over it")
	return cmd
}

// scrape is one reading of /metrics.
type scrape struct {
	at   time.Time
	fams map[string]*dto.MetricFamily
}

func (a *app) scrapeMetrics(cmd *cobra.Command) (scrape, error) {
	rc, err := a.client().Metrics(cmd.Context())
	if err != nil {
		return scrape{}, err
	}
	defer rc.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rc)
	if err != nil {
		return scrape{}, fmt.Errorf("top: read the server's metrics: %w", err)
	}
	return scrape{at: a.now(), fams: fams}, nil
}

// series are a family's metrics keyed by the values of the labels asked,
// joined with " ", summed over the other labels.
func (s scrape) series(name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for k, m := range s.metrics(name, labels) {
		for _, one := range m {
			out[k] += value(one)
		}
	}
	return out
}

func (s scrape) metrics(name string, labels []string) map[string][]*dto.Metric {
	out := map[string][]*dto.Metric{}
	fam := s.fams[name]
	if fam == nil {
		return out
	}
	for _, m := range fam.GetMetric() {
		var key []string
		for _, l := range labels {
			v := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == l {
					v = lp.GetValue()
				}
			}
			key = append(key, v)
		}
		k := strings.Join(key, " ")
		out[k] = append(out[k], m)
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// p99 is the 99th percentile of a histogram's observations (summed over
// the metrics given), interpolated within its bucket as Prometheus's
// histogram_quantile does; NaN without observations.
func p99(ms []*dto.Metric) float64 {
	bounds := map[float64]float64{}
	total := 0.0
	for _, m := range ms {
		h := m.GetHistogram()
		total += float64(h.GetSampleCount())
		for _, b := range h.GetBucket() {
			bounds[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	if total == 0 {
		return math.NaN()
	}
	les := make([]float64, 0, len(bounds))
	for le := range bounds {
		les = append(les, le)
	}
	slices.Sort(les)
	rank, lower, below := 0.99*total, 0.0, 0.0
	for _, le := range les {
		if bounds[le] >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			return lower + (le-lower)*(rank-below)/(bounds[le]-below)
		}
		lower, below = le, bounds[le]
	}
	return lower
}

// rate is how much a counter grew per second since prev, or its total
// when there is no earlier reading.
func rate(cur, prev scrape, name, key string, labels ...string) string {
	now := cur.series(name, labels...)[key]
	if prev.fams == nil {
		return fmt.Sprintf("%.0f", now)
	}
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/s", math.Max(0, now-prev.series(name, labels...)[key])/secs)
}

func seconds(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return time.Duration(v * float64(time.Second)).Round(10 * time.Microsecond).String()
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// printTop prints cur: totals, or with prev the rates between the two.
func (a *app) printTop(cur, prev scrape) error {
	w := a.table()
	section := func(title string) { fmt.Fprintf(w, "\n%s\n", title) }
	fmt.Fprintf(w, "weft top  %s  (%s)\n", cur.at.UTC().Format(time.RFC3339), map[bool]string{true: "counts since start", false: "rates since the last refresh"}[prev.fams == nil])

	section("CONTROLLER")
	st := cur.series("weft_fabric_instances", "state")
	row(w, "instances", fmt.Sprintf("running %.0f  starting %.0f  pending %.0f  failed %.0f  stopping %.0f",
		st["running"], st["starting"], st["pending"], st["failed"], st["stopping"]))
	var why []string
	for _, k := range sortedKeys(cur.series("weft_fabric_instances_unplaceable", "reason")) {
		why = append(why, fmt.Sprintf("%s %.0f", k, cur.series("weft_fabric_instances_unplaceable", "reason")[k]))
	}
	row(w, "unplaceable", orDash(strings.Join(why, "  ")))
	nd := cur.series("weft_fabric_nodes", "state")
	row(w, "nodes", fmt.Sprintf("ready %.0f  draining %.0f  down %.0f", nd["ready"], nd["draining"], nd["down"]))
	row(w, "upgrades", fmt.Sprintf("%.0f in progress", cur.series("weft_fabric_upgrades_in_progress")[""]))
	row(w, "reconcile", fmt.Sprintf("p99 %s  passes %s  heartbeats %s  placements %s  moves %s",
		seconds(p99(cur.metrics("weft_fabric_reconcile_duration_seconds", nil)[""])),
		rate(cur, prev, "weft_fabric_reconcile_duration_seconds", ""),
		rate(cur, prev, "weft_fabric_heartbeats_total", ""),
		rate(cur, prev, "weft_fabric_placements_total", ""),
		rate(cur, prev, "weft_fabric_rebalance_moves_total", "")))

	section("RAFT")
	leader := "follower"
	if cur.series("weft_raft_leader")[""] == 1 {
		leader = "leader"
	}
	row(w, "state", fmt.Sprintf("%s  commit %.0f  applied %.0f  leadership changes %.0f", leader,
		cur.series("weft_raft_commit_index")[""], cur.series("weft_raft_applied_index")[""], cur.series("weft_raft_leadership_changes_total")[""]))
	row(w, "apply", fmt.Sprintf("p99 %s  %s", seconds(p99(cur.metrics("weft_raft_apply_duration_seconds", nil)[""])),
		rate(cur, prev, "weft_raft_apply_duration_seconds", "")))

	section("LOAD BALANCER")
	reqs := cur.series("weft_lb_requests_total", "endpoint")
	if len(reqs) > 0 {
		row(w, "ENDPOINT", "REQUESTS", "FAILURES", "IN FLIGHT", "P99")
	}
	inflight := cur.series("weft_lb_backend_in_flight", "endpoint")
	lat := cur.metrics("weft_lb_request_duration_seconds", []string{"endpoint"})
	for _, ep := range sortedKeys(reqs) {
		row(w, ep, rate(cur, prev, "weft_lb_requests_total", ep, "endpoint"), rate(cur, prev, "weft_lb_failures_total", ep, "endpoint"),
			fmt.Sprintf("%.0f", inflight[ep]), seconds(p99(lat[ep])))
	}

	section("STORAGE")
	sreqs := cur.series("weft_storage_requests_total", "service", "operation")
	if len(sreqs) > 0 {
		row(w, "SERVICE OPERATION", "REQUESTS", "ERRORS", "P99")
	}
	slat := cur.metrics("weft_storage_request_duration_seconds", []string{"service", "operation"})
	for _, op := range sortedKeys(sreqs) {
		row(w, op, rate(cur, prev, "weft_storage_requests_total", op, "service", "operation"),
			rate(cur, prev, "weft_storage_errors_total", op, "service", "operation"), seconds(p99(slat[op])))
	}
	return w.Flush()
}
