package boltlog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestReplicaConverges ships every frame of a database taking concurrent
// writes, and buckets made and deleted, to a replica that applies them,
// crashes and replays its log midway; both must end up holding the same.
func TestReplicaConverges(t *testing.T) {
	opt := Options{RotateAt: 2 << 10, RotateDeletes: 16}
	replicaDir := t.TempDir()
	var mu sync.Mutex // guards replica, which Ship and the crash below swap
	replica := open(t, replicaDir, opt)
	primaryOpt := opt
	primaryOpt.Ship = func(frame []byte) func() error {
		mu.Lock()
		defer mu.Unlock()
		err := replica.Apply(frame)
		return func() error { return err }
	}
	primary := open(t, t.TempDir(), primaryOpt)
	defer func() {
		primary.Close()
		replica.Close()
	}()
	if err := primary.Update(makeBuckets); err != nil {
		t.Fatal(err)
	}
	for round := range 6 {
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for range 40 {
					k, v := fmt.Appendf(nil, "w%d-%02d", w, rng.IntN(30)), fmt.Appendf(nil, "r%d", rng.Int())
					err := primary.Write(func(tx *Tx) error {
						if rng.IntN(4) == 0 {
							return bucket(tx).Delete(k)
						}
						return bucket(tx).Put(k, v)
					})
					if err != nil {
						t.Error(err)
					}
				}
			}()
		}
		// A bucket of its own per round, with a key, and the one of two
		// rounds before deleted.
		err := primary.Update(roundBuckets(round))
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if round == 3 {
			mu.Lock()
			crash(t, replica)
			replica = open(t, replicaDir, opt)
			mu.Unlock()
		}
	}
	want, got := dump(t, primary), dump(t, replica)
	if !slices.Equal(got, want) {
		t.Fatalf("the replica holds %d entries, the primary %d\nreplica %v\nprimary %v", len(got), len(want), got, want)
	}
	if len(want) < 30 {
		t.Fatalf("only %d entries: the workload wrote too little to compare", len(want))
	}
}

// dump lists every bucket and key of db, through the log.
func dump(t *testing.T, db *DB) []string {
	t.Helper()
	var out []string
	var walk func(path string, b *Bucket)
	walk = func(path string, b *Bucket) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if nb := b.Bucket(k); nb != nil {
				out = append(out, path+"/"+string(k)+"/")
				walk(path+"/"+string(k), nb)
				continue
			}
			out = append(out, path+"/"+string(k)+"="+string(v))
		}
	}
	err := db.View(func(tx *Tx) error {
		return tx.Bolt().ForEach(func(name []byte, _ *bolt.Bucket) error {
			out = append(out, string(name)+"/")
			walk(string(name), tx.Bucket(name))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
