package blob

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/vfs"
)

// fileStore keeps blob bytes in files under dir/data/xx/ID. Files are
// immutable once written except page blob files (written in place) and
// append blob files (appended past the committed length only).
//
// A file is written to dir/tmp, renamed into place, then fsynced with its
// directory (writeNew says why in that order); only then does a metadata
// commit reference it, so a crash leaves at worst an unreferenced file, which
// Open sweeps away. The one exception is a staged block: its record refers
// to a file not yet fsynced, marked volatile, until Put Block List syncs it
// (and Open drops such records, see putBlock).
//
// Files and their folders are readable by the server's user only (0600,
// 0700). Changes go through disk, so that tests can cut its power
// (vfs/crashfs); reads open the files directly.
type fileStore struct {
	dir  string
	disk vfs.FS
	log  *slog.Logger
	// rep takes every change of a data file to the replicas; stripes
	// keep one file's changes in the same order here and there.
	rep     storage.Replication
	stripes [64]sync.Mutex

	// Readers pin an epoch; a file that loses its last reference is removed
	// only once every reader that might have seen the old metadata is gone.
	mu      sync.Mutex
	epoch   uint64
	active  map[uint64]int
	pending []retired
}

type retired struct {
	epoch uint64
	files []string
}

func newFileStore(dir string, log *slog.Logger, rep storage.Replication, disk vfs.FS) (*fileStore, error) {
	if rep == nil {
		rep = noReplication{}
	}
	disk = vfs.Or(disk)
	fs := &fileStore{dir: dir, disk: disk, log: log, rep: rep, active: map[uint64]int{}}
	if err := disk.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("blob: clearing temporary files: %w", err)
	}
	// Made private also when an earlier version made them 0755: the
	// folders' mode is what keeps other users from the files.
	dirs := []string{filepath.Join(dir, "tmp"), filepath.Join(dir, "data")}
	for i := range 256 {
		dirs = append(dirs, filepath.Join(dir, "data", fmt.Sprintf("%02x", i)))
	}
	for _, d := range dirs {
		if err := disk.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blob: creating %s: %w", d, err)
		}
		if st, err := disk.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			if err := disk.Chmod(d, 0o700); err != nil {
				return nil, fmt.Errorf("blob: making %s private: %w", d, err)
			}
		}
	}
	// The folders exist after a power cut only once their parents are
	// synced; a file synced into a folder that is not would be lost.
	for _, d := range []string{filepath.Join(dir, "data"), dir} {
		if err := disk.SyncDir(d); err != nil {
			return nil, fmt.Errorf("blob: sync %s: %w", d, err)
		}
	}
	return fs, nil
}

// open opens the data file id for writing.
func (fs *fileStore) open(id string, flag int) (vfs.File, error) {
	return fs.disk.OpenFile(fs.path(id), flag, 0)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (fs *fileStore) path(id string) string {
	return filepath.Join(fs.dir, "data", id[:2], id)
}

// rel is a file's path as the replicas know it: relative to dir.
func rel(id string) string { return "data/" + id[:2] + "/" + id }

// inOrder changes a file in place and then tells the replicas, with no
// other change of the file in between, so that concurrent writers of one
// page blob leave the same bytes on every server.
func (fs *fileStore) inOrder(id string, change func() error, tell func(rel string)) error {
	h := fnv.New32a()
	h.Write([]byte(id))
	mu := &fs.stripes[h.Sum32()%uint32(len(fs.stripes))]
	mu.Lock()
	defer mu.Unlock()
	if err := change(); err != nil {
		return err
	}
	tell(rel(id))
	return nil
}

// noReplication is the storage of a server that has no replicas.
type noReplication struct{}

func (noReplication) Ship([]byte) func() error    { return nil }
func (noReplication) Write(string, int64, []byte) {}
func (noReplication) Punch(string, int64, int64)  {}
func (noReplication) Truncate(string, int64)      {}
func (noReplication) Copy(string)                 {}
func (noReplication) Remove(string)               {}

// writeNew streams r into a new file and returns its ID and length. Every
// byte also goes to the hashes given. More than limit bytes is an error
// (errTooLarge). A durable file is fsynced, with its directory, before
// writeNew returns; a file written with durable false only has its
// write-back started, and must go through syncFiles before a committed blob
// refers to it.
//
// The file is renamed into place before it is fsynced: no metadata refers to
// it until this returns, so a crash can only leave an unreferenced file
// (swept at Open), never a torn blob, and on ext4 the file's fsync then
// commits the rename too, which makes the directory fsync nearly free.
func (fs *fileStore) writeNew(r io.Reader, limit int64, durable bool, hashes ...hash.Hash) (string, int64, error) {
	id := newID()
	tmp := filepath.Join(fs.dir, "tmp", id)
	f, err := fs.disk.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("blob: creating file: %w", err)
	}
	final := fs.path(id)
	fl := &flusher{f: f}
	n, err := copyLimited(fl, r, limit, hashes...)
	if err == nil {
		err = fs.disk.Rename(tmp, final)
	}
	if err == nil && durable {
		err = vfs.Datasync(f)
	} else if err == nil && fl.off > fl.put {
		// Start write-back of the rest now so the later syncFiles finds
		// little left to do.
		vfs.StartWriteback(f, fl.put, fl.off-fl.put)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && durable {
		err = fs.disk.SyncDir(filepath.Dir(final))
	}
	if err != nil {
		_ = fs.disk.Remove(tmp)
		_ = fs.disk.Remove(final)
		return "", 0, err
	}
	fs.rep.Copy(rel(id))
	return id, n, nil
}

// syncFiles makes files written by writeNew with durable false durable:
// each is fdatasynced (several at once, so the disk sees them together) and
// then each of their directories is fsynced once, which makes their renames
// into place durable too.
func (fs *fileStore) syncFiles(ids []string) error {
	const parallel = 8
	errs := make([]error, len(ids))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fs.syncFile(id)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	dirs := map[string]bool{}
	for _, id := range ids {
		dir := filepath.Dir(fs.path(id))
		if dirs[dir] {
			continue
		}
		dirs[dir] = true
		if err := fs.disk.SyncDir(dir); err != nil {
			return fmt.Errorf("blob: sync %s: %w", dir, err)
		}
	}
	return nil
}

func (fs *fileStore) syncFile(id string) error {
	f, err := fs.open(id, os.O_RDONLY)
	if err != nil {
		return fmt.Errorf("blob: sync %s: %w", id, err)
	}
	err = vfs.Datasync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob: sync %s: %w", id, err)
	}
	return nil
}

// flusher starts write-back of every few MiB as they are written, so the
// disk works while the body is still arriving and the closing fsync of a
// large blob has little left to do.
type flusher struct {
	f        vfs.File
	off, put int64
}

const flushEvery = 8 << 20

func (w *flusher) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.put >= flushEvery {
		vfs.StartWriteback(w.f, w.put, w.off-w.put)
		w.put = w.off
	}
	return n, err
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyLimited copies r to w through a pooled buffer, feeding the hashes, and
// fails with errTooLarge past limit bytes.
func copyLimited(w io.Writer, r io.Reader, limit int64, hashes ...hash.Hash) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if n+int64(m) > limit {
				return n, errTooLarge
			}
			for _, h := range hashes {
				h.Write(buf[:m])
			}
			if _, err := w.Write(buf[:m]); err != nil {
				return n, fmt.Errorf("blob: writing data: %w", err)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, storage.BodyError(rerr)
		}
	}
}

// enter pins the current epoch for a reader; call the returned func when the
// reader no longer needs files it found in the metadata.
func (fs *fileStore) enter() func() {
	fs.mu.Lock()
	e := fs.epoch
	fs.active[e]++
	fs.mu.Unlock()
	return func() {
		fs.mu.Lock()
		fs.active[e]--
		if fs.active[e] == 0 {
			delete(fs.active, e)
		}
		ready := fs.reclaimable()
		fs.mu.Unlock()
		fs.remove(ready)
	}
}

// retire schedules files for removal; the caller has committed the metadata
// change that unreferenced them.
func (fs *fileStore) retire(files []string) {
	fs.mu.Lock()
	fs.epoch++
	fs.pending = append(fs.pending, retired{epoch: fs.epoch, files: files})
	ready := fs.reclaimable()
	fs.mu.Unlock()
	fs.remove(ready)
}

// reclaimable pops the retired files no active reader can still reach.
// Called with mu held.
func (fs *fileStore) reclaimable() []string {
	if len(fs.pending) == 0 {
		return nil
	}
	oldest := fs.epoch + 1
	for e := range fs.active {
		oldest = min(oldest, e)
	}
	var out []string
	keep := fs.pending[:0]
	for _, p := range fs.pending {
		if p.epoch <= oldest {
			out = append(out, p.files...)
		} else {
			keep = append(keep, p)
		}
	}
	fs.pending = keep
	return out
}

func (fs *fileStore) remove(files []string) {
	for _, id := range files {
		if err := fs.disk.Remove(fs.path(id)); err != nil && !os.IsNotExist(err) {
			fs.log.Warn("blob: removing data file", "file", id, "err", err)
		}
		fs.rep.Remove(rel(id))
	}
}

// sweep removes data files no metadata references (left by a crash between
// writing a file and committing it, or between a commit and the removal).
func (fs *fileStore) sweep(referenced func(id string) bool) (int, error) {
	n := 0
	for i := range 256 {
		sub := filepath.Join(fs.dir, "data", fmt.Sprintf("%02x", i))
		ents, err := fs.disk.ReadDir(sub)
		if err != nil {
			return n, fmt.Errorf("blob: listing data files: %w", err)
		}
		for _, e := range ents {
			if referenced(e.Name()) {
				continue
			}
			if err := fs.disk.Remove(filepath.Join(sub, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}
