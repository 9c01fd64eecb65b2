package drive

import (
	"container/list"
	"context"
	"sync"
)

// chunk is the unit the read cache fetches and keeps: one Get Blob of 64
// KiB costs about what one of 4 KiB does, and the reads that follow a miss
// are usually next to it.
const chunk = 64 << 10

// readAhead is how many chunks past a read a sequential miss fetches too
// (1 MiB): a sequential reader's next reads then find them cached instead
// of paying a round trip to the storage service each.
const readAhead = 16

// cached is a Disk with a read cache in front. Writes go straight to the
// disk and are acknowledged only once it has them (write-through, never
// write-back): the cache then takes the bytes written into the chunks it
// holds, and forgets those chunks when a write fails, since the disk may
// hold either version then.
type cached struct {
	Disk
	max int // chunks kept

	mu     sync.Mutex
	chunks map[int64]*list.Element // chunk index → element of lru holding *entry
	lru    list.List               // front: most recently used
	// nextMiss is the chunk after the last run of chunks fetched: a
	// miss there continues a sequential read, which reads ahead.
	nextMiss int64
	// writes counts the writes that ended, so that a read that fetched
	// chunks while a write went on does not keep what may be the bytes
	// from before that write. One count for the whole disk keeps the
	// cache's memory bounded; the price is a chunk not kept now and then.
	writes uint64
}

type entry struct {
	index int64
	data  []byte
}

// newCached keeps up to bytes of d's chunks (at least one).
func newCached(d Disk, bytes int64) *cached {
	return &cached{Disk: d, max: int(max(bytes/chunk, 1)), chunks: map[int64]*list.Element{}}
}

// chunkLen is the length of chunk i, shorter at the end of the disk.
func (c *cached) chunkLen(i int64) int {
	return int(min(chunk, c.Size()-i*chunk))
}

// ReadAt serves p from the chunks cached and fetches the missing ones,
// each run of consecutive missing chunks in one read.
func (c *cached) ReadAt(ctx context.Context, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	first, last := off/chunk, (off+int64(len(p))-1)/chunk
	for i := first; i <= last; {
		if c.copyOut(i, p, off) {
			i++
			continue
		}
		// A run of missing chunks from i, read ahead past the read when
		// it continues the last run fetched (and the cache has room).
		c.mu.Lock()
		j := i + 1
		for j <= last && c.chunks[j] == nil {
			j++
		}
		if j > last && i == c.nextMiss {
			ahead := min(int64(readAhead), int64(c.max/2))
			end := min(last+1+ahead, (c.Size()+chunk-1)/chunk)
			for j < end && c.chunks[j] == nil {
				j++
			}
		}
		c.nextMiss = j
		writes := c.writes
		c.mu.Unlock()
		buf := make([]byte, (j-1-i)*chunk+int64(c.chunkLen(j-1)))
		if err := c.Disk.ReadAt(ctx, buf, i*chunk); err != nil {
			return err
		}
		for k := i; k < j; k++ {
			data := buf[(k-i)*chunk:][:c.chunkLen(k)]
			if k <= last {
				copyChunk(p, off, k, data)
			}
			c.keep(k, writes, data)
		}
		i = j
	}
	return nil
}

// copyChunk copies the part of chunk i (data) that p, at off, covers.
func copyChunk(p []byte, off, i int64, data []byte) {
	start := i * chunk
	from := max(off, start)
	to := min(off+int64(len(p)), start+int64(len(data)))
	copy(p[from-off:to-off], data[from-start:to-start])
}

// copyOut copies chunk i into p if it is cached.
func (c *cached) copyOut(i int64, p []byte, off int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.chunks[i]
	if el == nil {
		return false
	}
	c.lru.MoveToFront(el)
	copyChunk(p, off, i, el.Value.(*entry).data)
	return true
}

// keep caches chunk i, read when the write count was writes, unless a
// write ended since.
func (c *cached) keep(i int64, writes uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writes != writes || c.chunks[i] != nil {
		return
	}
	c.chunks[i] = c.lru.PushFront(&entry{index: i, data: data})
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*entry)
		delete(c.chunks, old.index)
	}
}

// WriteAt writes through to the disk.
func (c *cached) WriteAt(ctx context.Context, p []byte, off int64) error {
	err := c.Disk.WriteAt(ctx, p, off)
	c.wrote(off, int64(len(p)), p, err)
	return err
}

// Zero clears through to the disk.
func (c *cached) Zero(ctx context.Context, off, n int64) error {
	err := c.Disk.Zero(ctx, off, n)
	c.wrote(off, n, nil, err)
	return err
}

// wrote brings the cached chunks of [off, off+n) up to date with a write
// of p (nil: zeros) that ended with err.
func (c *cached) wrote(off, n int64, p []byte, err error) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	for i := off / chunk; i <= (off+n-1)/chunk; i++ {
		el := c.chunks[i]
		if el == nil {
			continue
		}
		if err != nil {
			c.lru.Remove(el)
			delete(c.chunks, i)
			continue
		}
		data := el.Value.(*entry).data
		start := i * chunk
		from, to := max(off, start), min(off+n, start+int64(len(data)))
		if p == nil {
			clear(data[from-start : to-start])
		} else {
			copy(data[from-start:to-start], p[from-off:to-off])
		}
	}
}
