package boltlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	deep   = [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	hollow = []byte("hollow")
	doomed = []byte("doomed")
)

// TestDumpRestoresEverything dumps a database whose keys are in bbolt,
// overwritten or deleted in the overlay, or only in the overlay, into an
// empty one, which must then hold every bucket and key.
func TestDumpRestoresEverything(t *testing.T) {
	opt := Options{RotateAt: 2 << 10}
	primary := open(t, t.TempDir(), opt)
	defer primary.Close()
	err := primary.Update(func(tx *Tx) error {
		if err := makeBuckets(tx); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists([]byte("empty")); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(deep[0])
		for _, name := range deep[1:] {
			if err != nil {
				break
			}
			b, err = b.CreateBucketIfNotExists(name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// About 8 MiB, for several frames, through many checkpoints.
	big := make([]byte, 1<<10)
	for i := range 30 {
		err := primary.Write(func(tx *Tx) error {
			for j := range 100 {
				k, v := fmt.Appendf(nil, "k%04d", i*100+j), big
				if j%7 == 0 {
					v = nil // read back as empty, not as deleted
				}
				for _, b := range []*Bucket{bucket(tx), deepBucket(tx), tx.Bucket(deep[0])} {
					if err := b.Put(k, v); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Checkpoints everything: what follows stays in the overlay.
	err = primary.Update(func(tx *Tx) error {
		_, err := tx.Bucket(top).CreateBucket(hollow)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	overlayOnly := func(tx *Tx) error {
		b := bucket(tx)
		for i := range 10 {
			if err := b.Delete(fmt.Appendf(nil, "k%04d", i*3)); err != nil {
				return err
			}
			if err := b.Put(fmt.Appendf(nil, "k%04d", i*3+1), []byte("new")); err != nil {
				return err
			}
			if err := deepBucket(tx).Put(fmt.Appendf(nil, "n%02d", i), nil); err != nil {
				return err
			}
		}
		return b.Put([]byte("gone"), []byte("soon"))
	}
	for _, fn := range []func(*Tx) error{overlayOnly, func(tx *Tx) error { return bucket(tx).Delete([]byte("gone")) }} {
		if err := primary.Write(fn); err != nil {
			t.Fatal(err)
		}
	}

	var deletes int
	var frames [][]byte
	err = primary.Dump(func() {
		primary.mu.RLock()
		deletes = primary.cur.deletes
		primary.mu.RUnlock()
	}, func(f []byte) error {
		frames = append(frames, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if deletes < 11 {
		t.Fatalf("the overlay held %d deleted keys at the cut, want 11: the test no longer dumps an overlay", deletes)
	}
	if n := primary.db.Stats().OpenTxN; n != 0 {
		t.Errorf("%d bbolt read transactions left open after Dump", n)
	}
	if len(frames) < 4 {
		t.Fatalf("%d frames, want several for about 8 MiB", len(frames))
	}
	if frames[0][0] != frameUpdate {
		t.Errorf("the first frame is of kind %d, want the buckets (%d)", frames[0][0], frameUpdate)
	}
	for i, f := range frames {
		if len(f) > dumpFrameSize+4<<10 {
			t.Errorf("frame %d has %d bytes, more than about %d", i, len(f), dumpFrameSize)
		}
	}

	replica := open(t, t.TempDir(), opt)
	defer replica.Close()
	applyAll(t, replica, frames)
	want, got := dump(t, primary), dump(t, replica)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("the dump made a replica unlike the primary (-primary +replica):\n%s", diff)
	}
	if len(want) < 9000 {
		t.Fatalf("only %d entries: the workload wrote too little to compare", len(want))
	}
}

func deepBucket(tx *Tx) *Bucket {
	return tx.Bucket(deep[0]).Bucket(deep[1]).Bucket(deep[2])
}

func applyAll(t *testing.T, db *DB, frames [][]byte) {
	t.Helper()
	for i, f := range frames {
		if err := db.Apply(f); err != nil {
			t.Fatalf("apply frame %d: %v", i, err)
		}
	}
}

// TestDumpCutWhileWriting dumps a database taking writes, and buckets
// made and deleted, several times; each dump followed by the frames
// shipped after its cut must make a replica equal to the primary.
func TestDumpCutWhileWriting(t *testing.T) {
	opt := Options{RotateAt: 2 << 10, RotateDeletes: 16}
	var mu sync.Mutex // guards shipped
	var shipped [][]byte
	primaryOpt := opt
	primaryOpt.Ship = func(frame []byte) func() error {
		mu.Lock()
		shipped = append(shipped, frame)
		mu.Unlock()
		// Shipping takes time, as on a network, in which a cut must not
		// fall: the frame counts as shipped, not yet as published.
		return func() error {
			time.Sleep(100 * time.Microsecond)
			return nil
		}
	}
	primary := open(t, t.TempDir(), primaryOpt)
	defer primary.Close()
	err := primary.Update(func(tx *Tx) error {
		if err := makeBuckets(tx); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(doomed)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	// Offered by a writer every 50 writes; closed when it stops, so that
	// nothing waits for a writer that failed.
	tick := make(chan struct{})
	var wg sync.WaitGroup
	stopWriters := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopWriters()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w == 0 {
				defer close(tick)
			}
			rng := rand.New(rand.NewPCG(uint64(w), 0))
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if w == 0 && i%50 == 0 {
					select {
					case tick <- struct{}{}:
					default:
					}
				}
				// A key of its own, which no later frame hides if a cut
				// loses it, and one of a few, put or deleted.
				own := fmt.Appendf(nil, "w%d-%05d", w, i)
				k, v := fmt.Appendf(nil, "c%d-%02d", w, rng.IntN(20)), fmt.Appendf(nil, "r%d", rng.Int())
				del, inDoomed := rng.IntN(4) == 0, rng.IntN(3) == 0
				err := primary.Write(func(tx *Tx) error {
					if err := bucket(tx).Put(own, v); err != nil {
						return err
					}
					b := bucket(tx)
					if d := tx.Bucket(doomed); d != nil && inDoomed {
						b = d
					}
					if del {
						return b.Delete(k)
					}
					return b.Put(k, v)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}

	type cut struct {
		from   int // shipped[from:] came after the cut
		frames [][]byte
	}
	var cuts []cut
	for round := range 4 {
		<-tick
		// A bucket of its own per round, with a key, and the one of two
		// rounds before deleted, racing the writes.
		err := primary.Update(roundBuckets(round))
		if err != nil {
			t.Fatal(err)
		}
		var c cut
		err = primary.Dump(func() {
			mu.Lock()
			c.from = len(shipped)
			mu.Unlock()
		}, func(f []byte) error {
			c.frames = append(c.frames, f)
			// Writes go on while a dump is emitted (this file stays far
			// inside bbolt's first map, which the dump holds); those after
			// the cut reach the replica as shipped frames.
			return primary.Write(func(tx *Tx) error {
				return bucket(tx).Put(fmt.Appendf(nil, "emit%d", round), f[:1])
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, c)
	}
	// After every cut: a bucket made, one the dumps hold deleted, and one
	// made and deleted.
	for _, fn := range []func(tx *Tx) error{
		func(tx *Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("late"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), []byte("v"))
		},
		func(tx *Tx) error { return tx.DeleteBucket(doomed) },
		func(tx *Tx) error {
			_, err := tx.Bucket(top).CreateBucket([]byte("ephemeral"))
			return err
		},
		func(tx *Tx) error { return tx.Bucket(top).DeleteBucket([]byte("ephemeral")) },
	} {
		<-tick
		if err := primary.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	<-tick
	stopWriters()

	want := dump(t, primary)
	if len(want) < 100 {
		t.Fatalf("only %d entries: the workload wrote too little to compare", len(want))
	}
	for i, c := range cuts {
		replica := open(t, t.TempDir(), opt)
		applyAll(t, replica, c.frames)
		applyAll(t, replica, shipped[c.from:])
		got := dump(t, replica)
		replica.Close()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("dump %d (cut at frame %d of %d) and the frames after it make a replica unlike the primary (-primary +replica):\n%s",
				i, c.from, len(shipped), diff)
		}
	}
}

// TestDumpErrors: an error of emit ends the dump, and a closed database
// dumps nothing.
func TestDumpErrors(t *testing.T) {
	db := open(t, t.TempDir(), Options{})
	if err := db.Update(makeBuckets); err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("refused")
	calls := 0
	err := db.Dump(func() {}, func([]byte) error {
		calls++
		return refusal
	})
	if !errors.Is(err, refusal) || calls != 1 {
		t.Errorf("Dump after emit failed once: %v, %d calls; want %v, 1 call", err, calls, refusal)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	err = db.Dump(func() { t.Error("cut called on a closed database") }, func([]byte) error { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Dump after Close: %v, want %v", err, ErrClosed)
	}
}
