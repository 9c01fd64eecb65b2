package boltlog

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

var (
	top    = []byte("top")
	nested = []byte("nested")
)

func open(t *testing.T, dir string, opt Options) *DB {
	t.Helper()
	db, err := Open(dir, "test", opt)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// roundBuckets makes a bucket of round's own under top, with a key, and
// deletes the one of two rounds before.
func roundBuckets(round int) func(tx *Tx) error {
	return func(tx *Tx) error {
		b, err := tx.Bucket(top).CreateBucket(fmt.Appendf(nil, "round%d", round))
		if err != nil {
			return err
		}
		if err := b.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		if round >= 2 {
			return tx.Bucket(top).DeleteBucket(fmt.Appendf(nil, "round%d", round-2))
		}
		return nil
	}
}

func makeBuckets(tx *Tx) error {
	b, err := tx.CreateBucketIfNotExists(top)
	if err != nil {
		return err
	}
	_, err = b.CreateBucketIfNotExists(nested)
	return err
}

func bucket(tx *Tx) *Bucket { return tx.Bucket(top).Bucket(nested) }

// TestMatchesModel writes, overwrites and deletes keys from several
// writers while tiny segments rotate and checkpoint underneath, and checks
// Get, cursors inside writes and views against a plain map, across clean
// reopens and reopens of a copy taken while open (a crash).
func TestMatchesModel(t *testing.T) {
	dir := t.TempDir()
	opt := Options{RotateAt: 2 << 10, RotateDeletes: 16}
	db := open(t, dir, opt)
	defer func() { db.Close() }()
	if err := db.Update(makeBuckets); err != nil {
		t.Fatal(err)
	}
	model := map[string]string{}
	var mu sync.Mutex
	const writers, keys = 4, 60
	for round := range 8 {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for range 60 {
					k1 := fmt.Sprintf("w%d-%03d", w, rng.IntN(keys))
					k2 := fmt.Sprintf("w%d-%03d", w, rng.IntN(keys))
					v1 := fmt.Sprintf("r%d-%d", round, rng.Int())
					del := rng.IntN(3) == 0
					// Two keys in one write, the second decided by what a
					// cursor inside the write sees of the first.
					err := db.Write(func(tx *Tx) error {
						b := bucket(tx)
						if err := b.Put([]byte(k1), []byte(v1)); err != nil {
							return err
						}
						c := b.Cursor()
						if k, v := c.Seek([]byte(k1)); string(k) != k1 || string(v) != v1 {
							return fmt.Errorf("cursor inside the write: %s=%s, want %s=%s", k, v, k1, v1)
						}
						if del {
							return b.Delete([]byte(k2))
						}
						return b.Put([]byte(k2), []byte(v1+"'"))
					})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					model[k1] = v1
					if del {
						delete(model, k2)
					} else {
						model[k2] = v1 + "'"
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		check(t, db, model)
		switch round % 3 {
		case 1:
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = open(t, dir, opt)
			check(t, db, model)
		case 2:
			crash(t, db)
			db = open(t, dir, opt)
			check(t, db, model)
		}
	}
}

func check(t *testing.T, db *DB, model map[string]string) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(model))
	err := db.View(func(tx *Tx) error {
		b := bucket(tx)
		for w := range 4 {
			for i := range 60 {
				k := fmt.Sprintf("w%d-%03d", w, i)
				v, ok := model[k]
				if got := b.Get([]byte(k)); (got != nil) != ok || string(got) != v {
					return fmt.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		}
		for _, from := range []string{"", "w1-010", "w3-", "x"} {
			var got []string
			c := b.Cursor()
			k, v := c.First()
			if from != "" {
				k, v = c.Seek([]byte(from))
			}
			for ; k != nil; k, v = c.Next() {
				got = append(got, string(k)+"="+string(v))
			}
			var want []string
			for _, k := range keys {
				if k >= from {
					want = append(want, k+"="+model[k])
				}
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("cursor from %q: got %d keys, want %d\ngot  %v\nwant %v", from, len(got), len(want), got, want)
			}
			// Backwards from the key before from, as page ranges are read.
			var back []string
			k, v = c.Seek([]byte(from))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
			for ; k != nil; k, v = c.Prev() {
				back = append(back, string(k)+"="+string(v))
			}
			var wantBack []string
			for i := len(keys) - 1; i >= 0; i-- {
				if keys[i] < from {
					wantBack = append(wantBack, keys[i]+"="+model[keys[i]])
				}
			}
			if !slices.Equal(back, wantBack) {
				return fmt.Errorf("cursor back from %q: got %v\nwant %v", from, back, wantBack)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// crash closes db as a kill -9 of its process would leave its files: the
// log's writes not checkpointed.
func crash(t *testing.T, db *DB) {
	t.Helper()
	db.mu.Lock()
	db.crashed = true
	db.mu.Unlock()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDeletedBucketStaysEmptyAfterReplay deletes a bucket whose keys were
// still in the log and makes it again: neither a checkpoint nor a replay
// after a crash may bring the old keys back.
func TestDeletedBucketStaysEmptyAfterReplay(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir, Options{})
	if err := db.Update(makeBuckets); err != nil {
		t.Fatal(err)
	}
	put := func(key string) {
		t.Helper()
		if err := db.Write(func(tx *Tx) error { return bucket(tx).Put([]byte(key), nil) }); err != nil {
			t.Fatal(err)
		}
	}
	put("old")
	if err := db.Update(func(tx *Tx) error { return tx.Bucket(top).DeleteBucket(nested) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(makeBuckets); err != nil {
		t.Fatal(err)
	}
	put("new")
	crash(t, db)
	for range 2 {
		db := open(t, dir, Options{})
		var keys []string
		err := db.View(func(tx *Tx) error {
			c := bucket(tx).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil {
					return fmt.Errorf("%s: a value put as nil reads as nil, as if deleted", k)
				}
				keys = append(keys, string(k))
			}
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"new"}) {
			t.Errorf("after reopening: keys %v, want [new]", keys)
		}
	}
}

// TestFailedWriteLeavesNothing: a write that returns an error keeps none
// of what it wrote, and the writes grouped with it keep theirs.
func TestFailedWriteLeavesNothing(t *testing.T) {
	db := open(t, t.TempDir(), Options{})
	defer db.Close()
	if err := db.Update(makeBuckets); err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("refused")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.Write(func(tx *Tx) error {
				if err := bucket(tx).Put(fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
					return err
				}
				if i%2 == 1 {
					return refusal
				}
				return nil
			})
			if i%2 == 1 && !errors.Is(err, refusal) || i%2 == 0 && err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	err := db.View(func(tx *Tx) error {
		for i := range 20 {
			if got := bucket(tx).Get(fmt.Appendf(nil, "k%02d", i)); (got != nil) != (i%2 == 0) {
				return fmt.Errorf("k%02d = %q after a write that returned %v", i, got, i%2 == 1)
			}
		}
		return bucket(tx).Put([]byte("x"), nil)
	})
	if !errors.Is(err, errReadOnly) {
		t.Errorf("a put in a view: %v, want %v", err, errReadOnly)
	}
}
