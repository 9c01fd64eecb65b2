package queue

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// BenchmarkPutGetDelete measures one message's round trip (enqueue,
// dequeue, delete: three fsynced writes) through the official SDK, with
// parallel clients sharing group commits. Report messages/s = 1e9/(ns/op).
func BenchmarkPutGetDelete(b *testing.B) {
	svc, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ep := storagetest.Serve(b, storage.Queue, svc)
	client, err := azqueue.NewServiceClientFromConnectionString(storagetest.ConnectionString("", ep, ""), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.CreateQueue(ctx, "bench", nil); err != nil {
		b.Fatal(err)
	}
	q := client.NewQueueClient("bench")
	b.SetParallelism(4) // with GOMAXPROCS 2: 8 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.EnqueueMessage(ctx, "payload", nil); err != nil {
				b.Error(err)
				return
			}
			got, err := q.DequeueMessages(ctx, nil)
			if err != nil {
				b.Error(err)
				return
			}
			for _, m := range got.Messages {
				if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
}
