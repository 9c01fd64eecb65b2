// Package storageload drives a storage service through the official Azure
// SDK for Go (azblob, azqueue, aztables) with the workloads Weft's storage
// figures are measured by: blob uploads and downloads, small blob puts and
// gets, random page writes, queue round trips, table inserts and point
// queries, each from a number of concurrent clients.
//
// internal/storage/storagebench runs them for a while each against Weft's
// storage and Azurite (scripts/bench-storage.sh); the benchmarks of
// internal/storage/replica run the writing ones for b.N operations against
// a primary with and without replicas.
package storageload

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage"
)

// Target is a storage service under test: the development account's
// endpoints, each ending in the account's name
// (http://127.0.0.1:10000/devstoreaccount1).
type Target struct {
	Name               string // for reports
	Blob, Queue, Table string
}

// ConnectionString is the development account's connection string for
// t's endpoints.
func (t Target) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;QueueEndpoint=%s;TableEndpoint=%s;",
		storage.DevAccount, storage.DevKey, t.Blob, t.Queue, t.Table)
}

// Op is one operation of a workload, the i-th of the given client (0 up
// to the workload's Clients); it returns the bytes it moved.
type Op func(ctx context.Context, client, i int) (bytes int, err error)

// Workload is one measured load.
type Workload struct {
	Name     string // "1 MiB block blob upload"
	Unit     string // the figure: "MB/s" (by the bytes moved) or "ops/s"
	Clients  int
	ReadOnly bool // it reads what Prepare wrote; the others write every op
	// Prepare makes what the clients use at t (a container, a queue, a
	// table of its own, with whatever they read) and returns their op.
	Prepare func(ctx context.Context, t Target) (Op, error)
}

// Workloads are the storage benchmarks' workloads, in the order reported.
func Workloads() []Workload {
	return []Workload{
		blobs("1 MiB block blob upload", "MB/s", 8, 1<<20, false),
		blobs("1 MiB blob download", "MB/s", 8, 1<<20, true),
		blobs("64 MiB block blob upload", "MB/s", 1, 64<<20, false),
		blobs("64 MiB blob download", "MB/s", 1, 64<<20, true),
		blobs("1 KiB blob put", "ops/s", 16, 1<<10, false),
		blobs("1 KiB blob get", "ops/s", 16, 1<<10, true),
		{Name: "random 64 KiB page writes", Unit: "ops/s", Clients: 8, Prepare: pageWrites},
		{Name: "queue put+get+delete", Unit: "ops/s", Clients: 8, Prepare: queueRoundTrips},
		{Name: "table inserts", Unit: "ops/s", Clients: 8, Prepare: tableInserts},
		{Name: "table point queries", Unit: "ops/s", Clients: 8, ReadOnly: true, Prepare: tablePointQueries},
	}
}

// Result is what Drive did.
type Result struct {
	Ops, Bytes int64
	Elapsed    time.Duration
}

// Rate is the result in unit: MB/s (10^6 bytes) or, for anything else,
// operations per second.
func (r Result) Rate(unit string) float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	if unit == "MB/s" {
		return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// For is Drive's more for a run of d from now.
func For(d time.Duration) func() bool {
	deadline := time.Now().Add(d)
	return func() bool { return time.Now().Before(deadline) }
}

// Count is Drive's more for n operations in all.
func Count(n int) func() bool {
	var left atomic.Int64
	left.Store(int64(n))
	return func() bool { return left.Add(-1) >= 0 }
}

// Drive runs op from clients goroutines, each asking more before every
// op, until more says no. A client whose op fails stops; Drive returns
// what the ops that succeeded did and the first error.
func Drive(ctx context.Context, clients int, op Op, more func() bool) (Result, error) {
	var ops, moved atomic.Int64
	var first atomic.Pointer[error]
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; more(); i++ {
				n, err := op(ctx, c, i)
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
				ops.Add(1)
				moved.Add(int64(n))
			}
		})
	}
	wg.Wait()
	r := Result{Ops: ops.Load(), Bytes: moved.Load(), Elapsed: time.Since(start)}
	if err := first.Load(); err != nil {
		return r, *err
	}
	return r, nil
}

var names atomic.Int64 // keeps containers, queues and tables of each Prepare apart

func uniqueName() string { return fmt.Sprintf("bench%d", names.Add(1)) }

// blobs uploads size bytes as a new blob per op, or downloads one blob of
// size bytes again and again.
func blobs(name, unit string, clients, size int, download bool) Workload {
	return Workload{Name: name, Unit: unit, Clients: clients, ReadOnly: download, Prepare: func(ctx context.Context, t Target) (Op, error) {
		c, err := azblob.NewClientFromConnectionString(t.ConnectionString(), nil)
		if err != nil {
			return nil, err
		}
		container := uniqueName()
		if _, err := c.CreateContainer(ctx, container, nil); err != nil {
			return nil, err
		}
		data := make([]byte, size)
		rand.Read(data)
		if download {
			if _, err := c.UploadBuffer(ctx, container, "src", data, nil); err != nil {
				return nil, err
			}
			return func(ctx context.Context, client, i int) (int, error) {
				resp, err := c.DownloadStream(ctx, container, "src", nil)
				if err != nil {
					return 0, err
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return int(n), err
			}, nil
		}
		return func(ctx context.Context, client, i int) (int, error) {
			_, err := c.UploadBuffer(ctx, container, fmt.Sprintf("w%d-%d", client, i), data, nil)
			return size, err
		}, nil
	}}
}

// pageWrites writes 64 KiB at random page-aligned offsets of a 1 GiB page
// blob, as a VM's disk is written.
func pageWrites(ctx context.Context, t Target) (Op, error) {
	c, err := azblob.NewClientFromConnectionString(t.ConnectionString(), nil)
	if err != nil {
		return nil, err
	}
	container := uniqueName()
	if _, err := c.CreateContainer(ctx, container, nil); err != nil {
		return nil, err
	}
	const size = 1 << 30
	pb := c.ServiceClient().NewContainerClient(container).NewPageBlobClient("disk")
	if _, err := pb.Create(ctx, size, nil); err != nil {
		return nil, err
	}
	page := make([]byte, 64<<10)
	rand.Read(page)
	return func(ctx context.Context, client, i int) (int, error) {
		n, _ := rand.Int(rand.Reader, big.NewInt(size/int64(len(page))))
		off := n.Int64() * int64(len(page))
		_, err := pb.UploadPages(ctx, nopCloser{bytes.NewReader(page)}, blob.HTTPRange{Offset: off, Count: int64(len(page))}, &pageblob.UploadPagesOptions{})
		return len(page), err
	}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// queueRoundTrips puts a message, gets one and deletes what it got.
func queueRoundTrips(ctx context.Context, t Target) (Op, error) {
	c, err := azqueue.NewServiceClientFromConnectionString(t.ConnectionString(), nil)
	if err != nil {
		return nil, err
	}
	name := uniqueName()
	if _, err := c.CreateQueue(ctx, name, nil); err != nil {
		return nil, err
	}
	q := c.NewQueueClient(name)
	return func(ctx context.Context, client, i int) (int, error) {
		if _, err := q.EnqueueMessage(ctx, "payload", nil); err != nil {
			return 0, err
		}
		got, err := q.DequeueMessages(ctx, nil)
		if err != nil {
			return 0, err
		}
		for _, m := range got.Messages {
			if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}, nil
}

func newTable(ctx context.Context, t Target) (*aztables.Client, error) {
	svc, err := aztables.NewServiceClientFromConnectionString(t.ConnectionString(), nil)
	if err != nil {
		return nil, err
	}
	name := uniqueName()
	if _, err := svc.CreateTable(ctx, name, nil); err != nil {
		return nil, err
	}
	return svc.NewClient(name), nil
}

func entity(pk, rk string) []byte {
	return []byte(fmt.Sprintf(`{"PartitionKey":%q,"RowKey":%q,"Name":"bench","Count":42}`, pk, rk))
}

// tableInserts adds a new entity per op, one partition per client.
func tableInserts(ctx context.Context, t Target) (Op, error) {
	tc, err := newTable(ctx, t)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, client, i int) (int, error) {
		_, err := tc.AddEntity(ctx, entity(fmt.Sprintf("p%d", client), fmt.Sprintf("r%d", i)), nil)
		return 0, err
	}, nil
}

// tablePointQueries gets one of 100 entities by its keys.
func tablePointQueries(ctx context.Context, t Target) (Op, error) {
	tc, err := newTable(ctx, t)
	if err != nil {
		return nil, err
	}
	for i := 0; i < 100; i++ {
		if _, err := tc.AddEntity(ctx, entity("p", fmt.Sprintf("r%d", i)), nil); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context, client, i int) (int, error) {
		_, err := tc.GetEntity(ctx, "p", fmt.Sprintf("r%d", i%100), nil)
		return 0, err
	}, nil
}
