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

// countingDisk counts the reads that reach a disk.
type countingDisk struct {
	Disk
	mu    sync.Mutex
	reads int
}

func (d *countingDisk) ReadAt(ctx context.Context, p []byte, off int64) error {
	d.mu.Lock()
	d.reads++
	d.mu.Unlock()
	return d.Disk.ReadAt(ctx, p, off)
}

// TestSequentialReadsReadAhead: a sequential reader of 128 KiB at a time
// (what the loop device asks of a drive's file) reaches the storage service
// once per readAhead chunks, not once per read, and reads what is there; a
// random reader does not read ahead.
func TestSequentialReadsReadAhead(t *testing.T) {
	ctx := context.Background()
	blobs := blobtest.DevClient(t, nil)
	if err := blobs.CreateContainer(ctx, "disks"); err != nil {
		t.Fatal(err)
	}
	const size = 4 << 20
	if err := vmdisk.Create(ctx, blobs, "disks", "d", size, nil); err != nil {
		t.Fatal(err)
	}
	disk := vmdisk.Open(blobs, "disks", "d", size, "")
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i * 13)
	}
	if err := disk.WriteAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	counted := &countingDisk{Disk: disk}
	c := newCached(counted, DefaultCache)
	got := make([]byte, size)
	for off := int64(0); off < size; off += 128 << 10 {
		if err := c.ReadAt(ctx, got[off:off+128<<10], off); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("a sequential read through the cache differs from the disk")
	}
	// 64 chunks, 2 a read: 4 fetches of 18 chunks (the read's 2 and 16
	// ahead) instead of 32.
	if reads := size / (128 << 10); counted.reads > 4 {
		t.Errorf("%d sequential reads of 128 KiB reached the disk %d times, want at most 4", reads, counted.reads)
	}

	c = newCached(counted, DefaultCache)
	counted.reads = 0
	rng := rand.New(rand.NewPCG(3, 4))
	p := make([]byte, 4<<10)
	for range 50 {
		off := rng.Int64N(size/chunk) * chunk
		if err := c.ReadAt(ctx, p, off); err != nil {
			t.Fatal(err)
		}
	}
	if c.lru.Len() > 50+readAhead {
		t.Errorf("50 random reads left %d chunks cached: they read ahead", c.lru.Len())
	}
}
