package placement

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkPlace10kOn1k places 10,000 instances (100 groups of 100) on
// 1,000 nodes over 10 fault domains per iteration, and reports decisions
// per second and the 99th percentile of one decision. Nomad's published
// scheduler figures are 1,500-3,750 placements/s.
func BenchmarkPlace10kOn1k(b *testing.B) {
	nodes := benchNodes(1000, 10)
	reqs := benchRequests(100, 100)
	durations := make([]time.Duration, 0, len(reqs))
	var total time.Duration
	placed := 0
	for b.Loop() {
		b.StopTimer()
		c := NewCluster(nodes)
		b.StartTimer()
		for _, r := range reqs {
			start := time.Now()
			_, err := c.Place(r)
			d := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			durations = append(durations, d)
			total += d
			placed++
		}
	}
	slices.Sort(durations)
	p99 := durations[len(durations)*99/100]
	b.ReportMetric(float64(placed)/total.Seconds(), "placements/s")
	b.ReportMetric(float64(p99.Nanoseconds())/1000, "p99-µs/decision")
}

// BenchmarkPlaceOneBigGroup is the worst case for the walk: one group of
// 10,000 instances, so after the first round every node already holds one
// and no list can be cut short at a node without instances.
func BenchmarkPlaceOneBigGroup(b *testing.B) {
	nodes := benchNodes(1000, 10)
	reqs := benchRequests(1, 10000)
	placed := 0
	for b.Loop() {
		b.StopTimer()
		c := NewCluster(nodes)
		b.StartTimer()
		for _, r := range reqs {
			if _, err := c.Place(r); err != nil {
				b.Fatal(err)
			}
			placed++
		}
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}
