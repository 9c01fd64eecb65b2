package e2e

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/loadgen"
)

// The benchmarks here run real processes with the default heartbeat settings
// (500ms interval, 2s TTL). Run them with -benchtime=10x for "p50 of 10".

func reportPercentiles(b *testing.B, unit string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	pct := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
	b.ReportMetric(pct(0.5).Seconds(), "p50-"+unit)
	b.ReportMetric(pct(0.99).Seconds(), "p99-"+unit)
	b.ReportMetric(0, "ns/op") // the per-op time mixes set-up; the percentiles are the figures
}

// BenchmarkDeployToHealthy times `weft deploy` of a 10-instance process role
// until all 10 instances are healthy.
func BenchmarkDeployToHealthy(b *testing.B) {
	c := newClusterWith(b, 3, nil, nil)
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench%d", i)
		model := c.service(name, freePort(b), 10, "bench")
		start := time.Now()
		c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "120s")
		ds = append(ds, time.Since(start))
		c.mustWeft("service", "delete", name)
		c.waitFor("service deleted", 60*time.Second, func() bool {
			_, err := c.client.Service(context.Background(), name)
			return err != nil
		})
	}
	reportPercentiles(b, "s", ds)
}

// BenchmarkNodeDeathToReplacementsHealthy kills a node (its agent and its
// instances, kill -9) and times until its instances are healthy elsewhere.
func BenchmarkNodeDeathToReplacementsHealthy(b *testing.B) {
	c := newClusterWith(b, 3, nil, nil)
	c.mustWeft("deploy", "-f", c.service("hello", freePort(b), 6, "bench"), "--wait", "--timeout", "120s")
	var ds []time.Duration
	for i := 0; b.Loop(); i++ {
		victim := fmt.Sprintf("node-%d", i%3+1)
		var pids []int
		for _, in := range c.instances("hello") {
			if in.Node == victim {
				pids = append(pids, pidOf(b, in.ID))
			}
		}
		start := time.Now()
		c.kill9(c.agents[victim])
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		c.waitFor("replacements healthy", 60*time.Second, func() bool {
			for _, in := range c.instances("hello") {
				if in.Node == victim {
					return false
				}
			}
			return c.healthy("hello") == 6
		})
		ds = append(ds, time.Since(start))
		c.startAgent(victim)
		c.waitFor("node back", 30*time.Second, func() bool {
			n, err := c.client.Node(context.Background(), victim)
			return err == nil && n.State == api.NodeReady
		})
	}
	reportPercentiles(b, "s", ds)
}

// BenchmarkRollingUpgradeUnderLoad upgrades a 4-instance web role while 8
// clients hit the load balancer, and reports failed requests and latency.
func BenchmarkRollingUpgradeUnderLoad(b *testing.B) {
	c := newClusterWith(b, 3, nil, nil)
	port := freePort(b)
	c.mustWeft("deploy", "-f", c.service("hello", port, 4, "v0"), "--wait", "--timeout", "120s")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var total loadgen.Result
	var p99s []time.Duration
	for i := 1; b.Loop(); i++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan loadgen.Result, 1)
		go func() { done <- loadgen.Run(ctx, url, 8, 5*time.Second) }()
		c.mustWeft("deploy", "-f", c.service("hello", port, 4, fmt.Sprintf("v%d", i)), "--wait", "--timeout", "120s")
		cancel()
		res := <-done
		total.Requests += res.Requests
		total.Failures += res.Failures
		p99s = append(p99s, res.P99)
		b.Logf("upgrade %d: %s", i, res)
	}
	b.ReportMetric(float64(total.Requests), "requests")
	b.ReportMetric(float64(total.Failures), "failed-requests")
	sort.Slice(p99s, func(i, j int) bool { return p99s[i] < p99s[j] })
	b.ReportMetric(float64(p99s[len(p99s)/2].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}
