package state

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

var benchValue = []byte(`{"service":"hello","role":"web","node":"node-17","state":"running","health":"healthy","version":3}`)

// BenchmarkApply measures one writer: every batch waits for its own fsync.
func BenchmarkApply(b *testing.B) {
	db, _ := openTest(b)
	ctx := context.Background()
	i := 0
	start := time.Now()
	for b.Loop() {
		if _, err := db.Apply(ctx, []Op{{Kind: KindInstances, Key: fmt.Sprintf("k%07d", i), Value: benchValue}}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkApplyParallel measures many writers sharing fsyncs through the
// commit loop (run with -cpu or SetParallelism to vary the writers).
func BenchmarkApplyParallel(b *testing.B) {
	db, _ := openTest(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := db.Apply(ctx, []Op{{Kind: KindInstances, Key: fmt.Sprintf("k%07d", i), Value: benchValue}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkList measures a read of a 100-key prefix among 20,000 keys.
func BenchmarkList(b *testing.B) {
	db, _ := openTest(b)
	ctx := context.Background()
	for s := range 200 {
		ops := make([]Op, 0, 100)
		for i := range 100 {
			ops = append(ops, Op{Kind: KindInstances, Key: fmt.Sprintf("svc%03d/web/%03d", s, i), Value: benchValue})
		}
		if _, err := db.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if n := len(db.List(KindInstances, "svc123/")); n != 100 {
			b.Fatalf("listed %d", n)
		}
	}
}
