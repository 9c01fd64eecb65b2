package blob

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/weftcloud/weft/internal/storage"
)

// BenchmarkFindBlobsByTags100k searches 100,000 tagged blobs in 10
// containers through the SDK's Find Blobs by Tags. Each blob has tags id
// (000000 to 099999), shard (its id modulo 100) and parity. The blobs are
// stored through the same transaction code as Put Blob (putBlob keeps the
// index), in batches, since 100,000 requests would take the benchmark's
// time without measuring the search.
func BenchmarkFindBlobsByTags100k(b *testing.B) {
	const n = 100_000
	e := newEnv(b)
	for c := range 10 {
		e.container(b, fmt.Sprintf("box%d", c))
	}
	now := time.Now().UTC()
	for start := 0; start < n; start += 5000 {
		err := e.svc.update(func(t *txn) error {
			for i := start; i < start+5000; i++ {
				name := fmt.Sprintf("blob-%06d", i)
				rec := &blobRec{Name: name, Type: blockBlob, Created: now, Modified: now, ETag: e.svc.etag(now),
					Props: blobProps{ContentType: "application/octet-stream"},
					Tags:  map[string]string{"id": fmt.Sprintf("%06d", i), "shard": fmt.Sprintf("%03d", i%100), "parity": []string{"even", "odd"}[i%2]}}
				if err := t.putBlob(blobKey(storage.DevAccount, fmt.Sprintf("box%d", i%10), name, ""), rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	svc := e.client.ServiceClient()
	ctx := context.Background()
	for _, q := range []struct {
		name, where string
		want        int
	}{
		{"equality", `"shard" = '042'`, 1000},
		{"equality-and-range", `"shard" = '042' AND "id" >= '050000'`, 500},
		{"equality-in-container", `"parity" = 'even' AND @container = 'box4'`, 5000}, // a full page of 10,000
		{"range", `"id" >= '050000' AND "id" < '050100'`, 100},
	} {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				resp, err := svc.FilterBlobs(ctx, q.where, &service.FilterBlobsOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if len(resp.Blobs) != q.want {
					b.Fatalf("%s: %d blobs, want %d", q.where, len(resp.Blobs), q.want)
				}
			}
			b.ReportMetric(float64(q.want), "blobs/op")
		})
	}
}
