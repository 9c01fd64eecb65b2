package boltlog

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/weftcloud/weft/internal/vfs/crashfs"
)

// cutOptions are the options of a database on fs whose power is cut:
// small segments, so that they rotate and checkpoint, and bbolt without
// its fsyncs, which the cut does not test (its file is copied as it is)
// and which would make the test slow.
func cutOptions(fs *crashfs.FS) Options {
	return Options{
		FS:            fs,
		RotateAt:      4 << 10,
		RotateDeletes: 32,
		Bolt:          &bolt.Options{Timeout: time.Second, NoSync: true, NoFreelistSync: true, FreelistType: bolt.FreelistMapType},
	}
}

// acked is what writers were told: a key's value, or "" once its delete
// returned; deleting marks a delete still in flight, which may or may not
// survive a crash.
type acked struct {
	mu   sync.Mutex
	keys map[string]string
}

const deleting = "\x00deleting"

func (a *acked) set(k, v string) {
	a.mu.Lock()
	a.keys[k] = v
	a.mu.Unlock()
}

func (a *acked) snapshot() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.keys)
}

// writeUntilCut runs writers that put keys, and delete some, until the
// FS is cut from power once at least n writes were acknowledged; it
// returns the crash image and what had been acknowledged before the cut.
func writeUntilCut(t *testing.T, fs *crashfs.FS, db *DB, round, n int) (string, map[string]string) {
	t.Helper()
	a := &acked{keys: map[string]string{}}
	stop := make(chan struct{})
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("r%d-w%d-%05d", round, w, i)
				v := strings.Repeat(k, 1+i%7)
				if err := db.Write(func(tx *Tx) error { return bucket(tx).Put([]byte(k), []byte(v)) }); err != nil {
					t.Errorf("write %s: %v", k, err)
					return
				}
				a.set(k, v)
				if i%10 == 9 {
					old := fmt.Sprintf("r%d-w%d-%05d", round, w, i-5)
					a.set(old, deleting)
					if err := db.Write(func(tx *Tx) error { return bucket(tx).Delete([]byte(old)) }); err != nil {
						t.Errorf("delete %s: %v", old, err)
						return
					}
					a.set(old, "")
				}
				if w == 0 && i == n/4 {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	<-enough
	// Everything in the snapshot was acknowledged before the cut.
	want := a.snapshot()
	img := fs.Crash()
	// The writers went on until the cut: a key they began to delete
	// meanwhile may be gone from the image, or not.
	for k, v := range a.snapshot() {
		if was := want[k]; was != "" && was != deleting && (v == "" || v == deleting) {
			want[k] = deleting
		}
	}
	close(stop)
	wg.Wait()
	return img, want
}

// lost lists the acknowledged writes the database does not hold.
func lost(t *testing.T, db *DB, want map[string]string) []string {
	t.Helper()
	var out []string
	err := db.View(func(tx *Tx) error {
		b := bucket(tx)
		for k, v := range want {
			got := b.Get([]byte(k))
			switch {
			case v == deleting:
			case v == "" && got != nil:
				out = append(out, k+" (deleted, is back)")
			case v != "" && string(got) != v:
				out = append(out, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPowerCutKeepsAcknowledgedWrites cuts the power under writers while
// small segments rotate (renames and directory syncs) and checkpoint, and
// reopens from what the cut left, three times in a row: every write
// acknowledged before the cut is there.
func TestPowerCutKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	for round := range 3 {
		fs := crashfs.New(t, dir)
		db := open(t, dir, cutOptions(fs))
		if err := db.Update(makeBuckets); err != nil {
			t.Fatal(err)
		}
		img, want := writeUntilCut(t, fs, db, round, 160)
		db.Close() // what it does now does not reach the image
		dir = img
		db = open(t, dir, Options{})
		if l := lost(t, db, want); len(l) > 0 {
			t.Fatalf("round %d: %d of %d acknowledged writes lost after a power cut: %v", round, len(l), len(want), l[:min(len(l), 5)])
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPowerCutCatchesAMissingSync shows that the test above can fail: with
// the log's fdatasync, or its directory sync after a rename, made to do
// nothing, a power cut loses acknowledged writes.
func TestPowerCutCatchesAMissingSync(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ignore func(dir string) func(string) bool
	}{
		{"fdatasync of the log", func(string) func(string) bool {
			return func(p string) bool { return strings.Contains(filepath.Base(p), ".wal-") }
		}},
		{"directory sync after a rename", func(dir string) func(string) bool {
			return func(p string) bool { return p == dir }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := crashfs.New(t, dir)
			db := open(t, dir, cutOptions(fs))
			if err := db.Update(makeBuckets); err != nil {
				t.Fatal(err)
			}
			fs.IgnoreSyncs(tc.ignore(dir))
			// One writer, so that the last writes are surely in the log, not
			// checkpointed: the last one is too small to rotate its segment.
			want := map[string]string{}
			for i := range 200 {
				k := fmt.Sprintf("k%05d", i)
				v := strings.Repeat("v", i%50)
				if i == 199 {
					v = "last"
				}
				if err := db.Write(func(tx *Tx) error { return bucket(tx).Put([]byte(k), []byte(v)) }); err != nil {
					t.Fatal(err)
				}
				want[k] = v
			}
			img := fs.Crash()
			db.Close()
			db = open(t, img, Options{})
			defer db.Close()
			if l := lost(t, db, want); len(l) == 0 {
				t.Errorf("no acknowledged write lost with the %s ignored: the power-cut test cannot fail", tc.name)
			}
		})
	}
}
