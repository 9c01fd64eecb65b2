package table

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestStoreMatchesModel writes, overwrites and deletes keys from several
// writers while tiny log segments rotate and checkpoint underneath, and
// checks point reads and range scans against a plain map after every
// round, across clean reopens.
func TestStoreMatchesModel(t *testing.T) {
	dir := t.TempDir()
	open := func() *store {
		s, err := openStoreRotating(dir, slog.New(slog.DiscardHandler), 2<<10)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	defer func() { s.close() }()
	if err := s.update(createTableTx("acct", "t")); err != nil {
		t.Fatal(err)
	}
	model := map[string][]byte{}
	var mu sync.Mutex
	const writers, keysPerWriter = 4, 60
	for round := range 6 {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
				for range 80 {
					key := []byte(fmt.Sprintf("w%d-%03d", w, rng.IntN(keysPerWriter)))
					var val []byte
					if rng.IntN(4) > 0 {
						val = []byte(fmt.Sprintf("r%d-%d", round, rng.Int()))
					}
					err := s.write("acct", "t", func(tw *tableWriter) error {
						if val == nil {
							return tw.Delete(key)
						}
						return tw.Put(key, val)
					})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if val == nil {
						delete(model, string(key))
					} else {
						model[string(key)] = val
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		checkStore(t, s, model)
		if round%2 == 1 {
			if err := s.close(); err != nil {
				t.Fatal(err)
			}
			s = open()
			checkStore(t, s, model)
		}
	}
}

func checkStore(t *testing.T, s *store, model map[string][]byte) {
	t.Helper()
	for w := range 4 {
		for i := range 60 {
			key := fmt.Sprintf("w%d-%03d", w, i)
			got, err := s.entity("acct", "t", []byte(key))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, model[key]) {
				t.Fatalf("%s = %q, want %q", key, got, model[key])
			}
		}
	}
	keys := slices.Sorted(maps.Keys(model))
	for _, r := range []struct{ lo, hi string }{{"", ""}, {"w1-010", "w2-030"}, {"w3-", ""}} {
		var want []string
		for _, k := range keys {
			if k >= r.lo && (r.hi == "" || k < r.hi) {
				want = append(want, k+"="+string(model[k]))
			}
		}
		var hi []byte
		if r.hi != "" {
			hi = []byte(r.hi)
		}
		var got []string
		err := s.scan("acct", "t", []byte(r.lo), hi, func(k, v []byte) (bool, error) {
			got = append(got, string(k)+"="+string(v))
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("scan [%q, %q): got %d entries, want %d\ngot  %v\nwant %v", r.lo, r.hi, len(got), len(want), got, want)
		}
	}
}

func createTableTx(account, lower string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		a, err := tx.CreateBucketIfNotExists(accountBucketName(account))
		if err != nil {
			return err
		}
		_, err = a.CreateBucketIfNotExists(tableBucketName(lower))
		return err
	}
}

// TestDeletedTableStaysEmptyAfterReplay deletes a table whose entities
// were still in the log and recreates it: neither a checkpoint nor a
// replay after a crash may bring the old entities back.
func TestDeletedTableStaysEmptyAfterReplay(t *testing.T) {
	dir := t.TempDir()
	s, err := openStoreRotating(dir, slog.New(slog.DiscardHandler), segmentSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.update(createTableTx("a", "t")); err != nil {
		t.Fatal(err)
	}
	put := func(key string) {
		t.Helper()
		if err := s.write("a", "t", func(w *tableWriter) error { return w.Put([]byte(key), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	put("old")
	err = s.update(func(tx *bolt.Tx) error { return tx.Bucket(accountBucketName("a")).DeleteBucket(tableBucketName("t")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.write("a", "t", func(w *tableWriter) error { return nil }); err == nil {
		t.Fatal("write to a deleted table succeeded")
	}
	if err := s.update(createTableTx("a", "t")); err != nil {
		t.Fatal(err)
	}
	put("new")
	// Reopen without the clean shutdown's checkpoint, as after a crash:
	// copy the files while the store is open, then replay the copy.
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	s.close()
	for _, d := range []string{dir, crashed} {
		s, err := openStore(d, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		err = s.scan("a", "t", nil, nil, func(k, v []byte) (bool, error) {
			keys = append(keys, string(k))
			return true, nil
		})
		s.close()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"new"}) {
			t.Errorf("after reopening %s: keys %v, want [new]", d, keys)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
