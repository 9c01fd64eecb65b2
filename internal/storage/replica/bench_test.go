package replica

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storageload"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// BenchmarkReplicatedWrites runs the writing workloads of the storage
// benchmarks (internal/storage/storageload, the same as
// scripts/bench-storage.sh) against a primary with no replica, one and
// two in-sync replicas, each replica behind its own HTTP server on
// loopback as on another server. The replicas share this machine's cores
// and disk with the primary and the clients. Beside each figure it
// reports frames/op, the log frames (group commits) per op, and
// batches/op, the requests each replica was sent per op: the round trips
// writes waited for.
//
//	go test -run '^$' -bench ReplicatedWrites ./internal/storage/replica/
func BenchmarkReplicatedWrites(b *testing.B) {
	counts := []int{0, 1, 2}
	primaries := map[int]*benchPrimary{}
	for _, n := range counts {
		primaries[n] = newBenchPrimary(b, n)
	}
	ctx := context.Background()
	for _, w := range storageload.Workloads() {
		if w.ReadOnly {
			continue
		}
		for _, n := range counts {
			p := primaries[n]
			b.Run(fmt.Sprintf("%s/replicas=%d", w.Name, n), func(b *testing.B) {
				op, err := w.Prepare(ctx, p.target)
				if err != nil {
					b.Fatal(err)
				}
				posts, frames := p.posts.Load(), p.frames.Load()
				b.ResetTimer()
				r, err := storageload.Drive(ctx, w.Clients, op, storageload.Count(b.N))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.Rate(w.Unit), w.Unit)
				b.ReportMetric(float64(p.frames.Load()-frames)/float64(b.N), "frames/op")
				if n > 0 {
					b.ReportMetric(float64(p.posts.Load()-posts)/float64(n*b.N), "batches/op")
				}
				if in := p.shipper.Replicas(); len(in) != n {
					b.Fatalf("replicas after the run: %v, want %d in sync", in, n)
				}
			})
		}
	}
}

// benchPrimary is a primary's storage and shipper with its replicas in sync.
type benchPrimary struct {
	target  storageload.Target
	shipper *Shipper
	posts   atomic.Int64 // requests to the replicas
	frames  atomic.Int64 // log frames shipped
}

// newBenchPrimary starts a primary and copies it to n replicas, each a
// receiver behind an HTTP server of its own. A replica that fails can
// not be dropped: the shipper fails and so do the writes.
func newBenchPrimary(b *testing.B, n int) *benchPrimary {
	b.Helper()
	p := &benchPrimary{}
	peers := &http.Client{Transport: countRequests{http.DefaultTransport, &p.posts}}
	dir := b.TempDir()
	files := httptest.NewServer(FileHandler(dir, func() error { return nil }))
	b.Cleanup(files.Close)
	sh := NewShipper(ShipperConfig{Dir: dir, Source: Source{Name: "primary", Epoch: 1, API: files.URL}, Client: peers,
		Drop: func(ctx context.Context, name string) error {
			return errors.New("a replica failed during the benchmark")
		}})
	srv, err := storageserver.Listen(storageserver.Config{Data: dir})
	if err != nil {
		b.Fatal(err)
	}
	var receivers []*Receiver
	var servers []*httptest.Server
	// The primary first, so that its last frames find the replicas.
	b.Cleanup(func() {
		srv.Close()
		sh.Close()
		for i, rcv := range receivers {
			servers[i].Close()
			rcv.Close()
		}
	})
	ship := func(db string) storage.Replication { return countFrames{sh.For(db), &p.frames} }
	if err := srv.Open(ship); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		rcv, err := OpenReceiver(ReceiverConfig{Dir: b.TempDir(), Client: http.DefaultClient, Accept: func(Source) error { return nil }})
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(rcv)
		receivers, servers = append(receivers, rcv), append(servers, hs)
		err = sh.CatchUp(context.Background(), fmt.Sprintf("r%d", i+1), hs.URL, srv.Databases(), func(context.Context) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	p.target = storageload.Target{Name: fmt.Sprintf("%d replicas", n), Blob: srv.BlobEndpoint(), Queue: srv.QueueEndpoint(), Table: srv.TableEndpoint()}
	p.shipper = sh
	return p
}

// countFrames counts the frames shipped.
type countFrames struct {
	storage.Replication
	n *atomic.Int64
}

var _ storage.Replication = countFrames{}

func (c countFrames) Ship(frame []byte) func() error {
	c.n.Add(1)
	return c.Replication.Ship(frame)
}

// countRequests counts the requests that pass.
type countRequests struct {
	http.RoundTripper
	n *atomic.Int64
}

var _ http.RoundTripper = countRequests{}

func (c countRequests) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}
