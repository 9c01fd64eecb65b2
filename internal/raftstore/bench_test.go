package raftstore

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/state"
)

// BenchmarkApply measures committed writes per second with parallel
// writers, each Apply one small put, for one and three members.
//
//	go test -run '^$' -bench Apply -benchtime 3s ./internal/raftstore/
func BenchmarkApply(b *testing.B) {
	for _, size := range []int{1, 3} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("members=%d/writers=%d", size, writers), func(b *testing.B) {
				nodes := newCluster(b, size, nil)
				leader := waitLeader(b, nodes).s
				var seq atomic.Int64
				b.SetParallelism(writers) // times GOMAXPROCS goroutines
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						key := fmt.Sprintf("k%09d", seq.Add(1))
						if _, err := leader.Apply(context.Background(), []state.Op{put(state.KindMeta, key, `{"v":1}`)}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			})
		}
	}
}

// BenchmarkFailover measures, in a 3-member cluster with a writer always
// retrying, the time from the leader's crash (no leadership transfer) to
// the first write committed by the new leader; and, as handover, the same
// for a graceful Close. After each round the old leader restarts and
// catches up.
//
//	go test -run '^$' -bench Failover -benchtime 5x ./internal/raftstore/
func BenchmarkFailover(b *testing.B) {
	for _, graceful := range []bool{false, true} {
		name := "crash"
		if graceful {
			name = "handover"
		}
		b.Run(name, func(b *testing.B) {
			nodes := newCluster(b, 3, nil)
			var times []time.Duration
			for b.Loop() {
				leader := waitLeader(b, nodes)
				var stores []*Store
				for _, f := range followers(nodes, leader) {
					stores = append(stores, f.s)
				}
				start := time.Now()
				if graceful {
					leader.stop()
				} else {
					leader.crash()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := applyAnywhere(ctx, stores, []state.Op{put(state.KindMeta, "probe", `1`)})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(start))

				b.StopTimer()
				leader.start()
				waitIndex(b, leader.s, waitLeader(b, nodes).s.Index())
				b.StartTimer()
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			var sum time.Duration
			for _, d := range times {
				sum += d
			}
			b.ReportMetric(float64(sum.Milliseconds())/float64(len(times)), "ms-mean")
			b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "ms-max")
			b.ReportMetric(float64(times[0].Milliseconds()), "ms-min")
		})
	}
}
