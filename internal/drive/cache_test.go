package drive

import (
	"bytes"
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/weftcloud/weft/internal/storage/blobclient/blobtest"
	"github.com/weftcloud/weft/internal/vmdisk"
)

// TestCacheReadsWhatWasWritten runs reads, writes and clears of random
// ranges through a small cache over a real page blob and checks every
// read against the bytes written, with readers racing the writers of
// other ranges.
func TestCacheReadsWhatWasWritten(t *testing.T) {
	ctx := context.Background()
	blobs := blobtest.DevClient(t, nil)
	if err := blobs.CreateContainer(ctx, "disks"); err != nil {
		t.Fatal(err)
	}
	const size = 1<<20 + 512 // a short last chunk
	if err := vmdisk.Create(ctx, blobs, "disks", "d", size, nil); err != nil {
		t.Fatal(err)
	}
	c := newCached(vmdisk.Open(blobs, "disks", "d", size, ""), 4*chunk)
	model := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		off := rng.Int64N(size)
		n := min(1+rng.Int64N(3*chunk), size-off)
		switch rng.IntN(4) {
		case 0:
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if err := c.WriteAt(ctx, p, off); err != nil {
				t.Fatal(err)
			}
			copy(model[off:], p)
		case 1:
			if err := c.Zero(ctx, off, n); err != nil {
				t.Fatal(err)
			}
			clear(model[off : off+n])
		default:
			p := make([]byte, n)
			if err := c.ReadAt(ctx, p, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, model[off:off+n]) {
				t.Fatalf("read %d@%d differs from what was written", n, off)
			}
		}
	}
	if c.lru.Len() > 4 {
		t.Errorf("the cache holds %d chunks, more than its 4", c.lru.Len())
	}

	// Each writer owns one chunk and checks it after each write, while
	// the others' reads fill and evict the cache around it.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			off := int64(w) * chunk
			for i := range 10 {
				p := bytes.Repeat([]byte{byte(w*10 + i)}, chunk)
				if err := c.WriteAt(ctx, p, off); err != nil {
					t.Error(err)
					return
				}
				got := make([]byte, chunk)
				if err := c.ReadAt(ctx, got, off); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(got, p) {
					t.Errorf("chunk %d: read stale bytes after write %d", w, i)
					return
				}
			}
		})
	}
	wg.Wait()
}
