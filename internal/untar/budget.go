package untar

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/weftcloud/weft/api"
)

// Budget is a node's allowance of unpacked bytes, shared by every Extract
// given it. Extract takes from it as it writes; whoever removes what was
// written gives it back with Release.
type Budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
}

// NewBudget returns a budget of limit bytes (0: unlimited, only counted).
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Hold counts n bytes already on disk (found at start), even beyond the
// limit: what is there stays, and new archives wait for room.
func (b *Budget) Hold(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// Release gives back n bytes, once their files are removed.
func (b *Budget) Release(n int64) {
	b.mu.Lock()
	b.used = max(b.used-n, 0)
	b.mu.Unlock()
}

// Used returns the bytes held.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

func (b *Budget) take(n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.used+n > b.limit {
		return fmt.Errorf("the node's unpacked images and packages would exceed its limit of %s (%s in use)", api.Bytes(b.limit), api.Bytes(b.used))
	}
	b.used += n
	return nil
}

// Usage measures dir as Extract counts it (content of regular files plus
// EntryCost per entry), for what an earlier run left on disk. A missing dir
// is 0.
func Usage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return fs.SkipAll
		}
		if err != nil || p == dir {
			return err
		}
		n += EntryCost
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("untar: measure %s: %w", dir, err)
	}
	return n, nil
}
