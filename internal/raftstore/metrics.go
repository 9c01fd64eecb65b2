package raftstore

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// figures are the store's Prometheus metrics: apply latency and
// leadership changes are observed as they happen; Raft's indexes are read
// at each scrape (collector).
type figures struct {
	apply   *prometheus.HistogramVec
	changes prometheus.Counter
}

func newFigures() *figures {
	return &figures{
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_raft_apply_duration_seconds", Help: "Time from handing a batch to Raft to its being applied here, by result (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"result"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_raft_leadership_changes_total", Help: "Times this server became leader or stopped being leader.",
		}),
	}
}

func (f *figures) observeApply(start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	f.apply.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

var (
	commitDesc  = prometheus.NewDesc("weft_raft_commit_index", "The highest log index this server knows committed.", nil, nil)
	appliedDesc = prometheus.NewDesc("weft_raft_applied_index", "The highest log index applied to this server's state.", nil, nil)
	lastDesc    = prometheus.NewDesc("weft_raft_last_log_index", "The last index in this server's log.", nil, nil)
	leaderDesc  = prometheus.NewDesc("weft_raft_leader", "1 while this server is the leader, else 0.", nil, nil)
	contactDesc = prometheus.NewDesc("weft_raft_last_contact_seconds", "Time since this follower last heard the leader (0 on the leader).", nil, nil)
)

type collector struct{ s *Store }

var _ prometheus.Collector = collector{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{commitDesc, appliedDesc, lastDesc, leaderDesc, contactDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.raft
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(commitDesc, float64(r.CommitIndex()))
	gauge(appliedDesc, float64(r.AppliedIndex()))
	gauge(lastDesc, float64(r.LastIndex()))
	leader, contact := 0.0, 0.0
	if r.State() == raft.Leader {
		leader = 1
	} else if last := r.LastContact(); !last.IsZero() {
		contact = time.Since(last).Seconds()
	}
	gauge(leaderDesc, leader)
	gauge(contactDesc, contact)
}

// Register adds the store's metrics to reg: apply latency, leadership
// changes, the commit, applied and last indexes, whether this server
// leads, and how long since a follower heard the leader.
func (s *Store) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{collector{s}, s.figures.apply, s.figures.changes} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("raftstore: register metrics: %w", err)
		}
	}
	return nil
}
