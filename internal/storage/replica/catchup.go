package replica

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// Databases are the storage service's databases, by the directory they
// keep their files in (blob, queue, table).
type Databases map[string]*boltlog.DB

// errStopped ends a copy whose replica was removed meanwhile.
var errStopped = errors.New("replica: removed while being copied")

// CatchUp copies this server's storage to the replica at api and makes it
// a member of the in-sync set: ops from now on queue up for it; it is
// emptied; each database is dumped at a cut in its frames, and every
// data file copied; then the queue is sent, and once the replica is
// nearly level, writes start waiting for it and add puts it in the set
// through the replicated state.
func (s *Shipper) CatchUp(ctx context.Context, name, api string, dbs Databases, add func(ctx context.Context) error) error {
	p := &peer{name: name, api: api, holding: true, frames: map[string]bool{},
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return s.failed
	}
	if s.peers[name] != nil {
		s.mu.Unlock()
		return fmt.Errorf("replica: %s is a replica already", name)
	}
	s.peers[name] = p
	s.mu.Unlock()
	err := s.copyTo(ctx, p, dbs, add)
	if err != nil {
		s.mu.Lock()
		s.removeLocked(p)
		s.mu.Unlock()
	}
	return err
}

func (s *Shipper) copyTo(ctx context.Context, p *peer, dbs Databases, add func(ctx context.Context) error) error {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := s.post(ctx, p, "reset", nil, nil); err != nil {
		return err
	}
	names := make([]string, 0, len(dbs))
	for name := range dbs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := s.dump(ctx, p, name, dbs[name]); err != nil {
			return fmt.Errorf("replica: copying the %s database: %w", name, err)
		}
	}
	files, err := s.copyFiles(ctx, p)
	if err != nil {
		return fmt.Errorf("replica: copying files: %w", err)
	}
	// Live: the sender works through what queued meanwhile.
	s.mu.Lock()
	if s.peers[p.name] != p {
		s.mu.Unlock()
		return errStopped
	}
	p.holding = false
	s.mu.Unlock()
	go s.sendLoop(p)
	p.signal()
	if err := s.level(ctx, p); err != nil {
		return err
	}
	// Writes wait for it from now on; those answered before must reach it
	// before the set says it holds them all.
	s.mu.Lock()
	p.inSync = true
	upTo := s.seq
	s.mu.Unlock()
	err = s.waitUntil(ctx, p, func() bool { return len(p.queue) == 0 || p.queue[0].seq > upTo })
	if err != nil {
		return err
	}
	if err := add(ctx); err != nil {
		s.mu.Lock()
		p.inSync = false
		s.mu.Unlock()
		return fmt.Errorf("replica: joining the in-sync set: %w", err)
	}
	s.log.Info("replica in sync", "replica", p.name, "files", files.Files, "fetched_bytes", files.Fetched,
		"had_bytes", files.Same, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// dump sends a database as it is at a cut in its frames; frames after the
// cut queue up for the replica.
func (s *Shipper) dump(ctx context.Context, p *peer, name string, db *boltlog.DB) error {
	var batch []Op
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.post(ctx, p, "ops", batch, nil)
		batch, size = batch[:0], 0
		return err
	}
	cut := func() {
		s.mu.Lock()
		p.frames[name] = true
		s.mu.Unlock()
	}
	err := db.Dump(cut, func(frame []byte) error {
		op := Op{kind: opFrame, db: name, data: slices.Clone(frame)}
		batch = append(batch, op)
		if size += op.size(); size >= batchBytes {
			return flush()
		}
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	return flush()
}

// copyFiles has the replica bring every blob data file there is now level
// with this server's, then remove the ones this server does not have; the
// changes since the copy started are in its queue.
func (s *Shipper) copyFiles(ctx context.Context, p *peer) (CopyStats, error) {
	var batch []Op
	var moved int64 // the batch's bytes, at most
	flush := func() error {
		err := s.post(ctx, p, "ops", batch, nil)
		batch, moved = batch[:0], 0
		return err
	}
	err := dataFiles(s.dir, func(path string) error {
		batch = append(batch, Op{kind: opCopy, path: path, n: fileSize(filepath.Join(s.dir, filepath.FromSlash(path)))})
		if moved += batch[len(batch)-1].n; len(batch) == 64 || moved >= 1<<30 {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	var stats CopyStats
	if err == nil {
		err = s.post(ctx, p, "prune", nil, &stats)
	}
	return stats, err
}

// fileSize is a file's size, or 0 when it is gone.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// levelPatience is how long a copied replica's queue may stay longer than
// a batch before writes start waiting for it: writers that outpace the
// replica would otherwise keep it from ever getting level.
const levelPatience = 3 * time.Second

// level waits until what is left in p's queue fits in one batch. Past
// levelPatience, writes wait for p as for an in-sync replica, which slows
// them to what p takes, until it is level.
func (s *Shipper) level(ctx context.Context, p *peer) error {
	patience := time.AfterFunc(levelPatience, func() {
		s.mu.Lock()
		if !p.inSync {
			p.inSync = true
			s.log.Info("replica lags behind the writes; writes wait for it until it is level", "replica", p.name)
		}
		s.mu.Unlock()
	})
	defer patience.Stop()
	return s.waitUntil(ctx, p, func() bool { return p.bytes <= batchBytes })
}

// waitUntil waits until done, called under s.mu, holds of p's queue; or
// p is removed (errStopped), or ctx ends.
func (s *Shipper) waitUntil(ctx context.Context, p *peer, done func() bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !done() {
		if s.peers[p.name] != p {
			return errStopped
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// The sender's acks broadcast; a canceled ctx needs a nudge.
		stop := context.AfterFunc(ctx, func() {
			s.mu.Lock()
			s.cond.Broadcast()
			s.mu.Unlock()
		})
		s.cond.Wait()
		stop()
	}
	if s.peers[p.name] != p {
		return errStopped
	}
	return nil
}
