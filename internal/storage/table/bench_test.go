package table

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// benchClients matches the 8 concurrent clients Azurite was measured
// with; RunParallel starts parallelism × GOMAXPROCS goroutines.
const benchClients = 8

func BenchmarkInsertParallel(b *testing.B) {
	env := newEnv(b)
	tc := env.table(b, "benchinsert")
	var n atomic.Int64
	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			e := mustJSON(b, map[string]any{"PartitionKey": fmt.Sprintf("p%d", i%16), "RowKey": fmt.Sprintf("r%09d", i), "Name": "bench", "V": i})
			if _, err := tc.AddEntity(context.Background(), e, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

func BenchmarkPointQueryParallel(b *testing.B) {
	env := newEnv(b)
	tc := env.table(b, "benchquery")
	const rows = 1000
	for i := range rows {
		e := mustJSON(b, map[string]any{"PartitionKey": fmt.Sprintf("p%d", i%16), "RowKey": fmt.Sprintf("r%09d", i), "Name": "bench", "V": i})
		if _, err := tc.AddEntity(context.Background(), e, nil); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % rows
			if _, err := tc.GetEntity(context.Background(), fmt.Sprintf("p%d", i%16), fmt.Sprintf("r%09d", i), nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkBatch100 submits entity group transactions of 100 inserts
// (Azure's most) through the SDK, each to a partition of its own, from
// benchClients clients: one durable commit per batch.
func BenchmarkBatch100(b *testing.B) {
	env := newEnv(b)
	tc := env.table(b, "benchbatch")
	var n atomic.Int64
	b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		actions := make([]aztables.TransactionAction, 100)
		for pb.Next() {
			pk := fmt.Sprintf("p%09d", n.Add(1))
			for i := range actions {
				actions[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd,
					Entity: mustJSON(b, map[string]any{"PartitionKey": pk, "RowKey": fmt.Sprintf("r%03d", i), "Name": "bench", "V": i})}
			}
			if _, err := tc.SubmitTransaction(context.Background(), actions, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "batches/s")
	b.ReportMetric(float64(b.N)*100/secs, "entities/s")
}
