// Package crashfs is a vfs.FS for tests that can be cut from power: Crash
// returns a copy of the directory as a power cut would leave it, so a
// durability test can reopen a store from it and check that every write
// the store acknowledged is there. Killing a process does not test that:
// the page cache survives it, so such a test passes with every fsync
// removed. The models are Pebble's vfs.NewStrictMem and etcd's crash tests.
//
// Files live on the real disk, under a root directory, so that code that
// does not go through the FS (bbolt opens and maps its file itself) keeps
// working beside code that does. The FS records what has been made
// durable, in the strictest way POSIX allows:
//
//   - file data (and size) written since the file's last Sync is lost;
//   - a name created, renamed or removed in a directory since that
//     directory's last SyncDir is as it was at that SyncDir; a directory
//     made by MkdirAll needs its parent synced the same way;
//   - RemoveAll is taken as durable at once (one of the outcomes a power
//     cut may have), and renaming directories is not supported.
//
// Files the FS never saw an operation on (bbolt's, or any created by other
// code) are copied as they are at the crash: as after a kill -9, not a
// power cut. What was made durable is kept in shadow files in a temporary
// directory, updated at each sync by the ranges written since the last.
//
// The FS can also fill up (SetFull) and ignore some syncs (IgnoreSyncs),
// which makes a test prove that it fails when a sync is missing.
package crashfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/vfs"
)

// FS is a crash-simulating file system over the directory root. Operations
// on paths outside root pass through untracked. Its methods are safe for
// concurrent use; they run one at a time.
type FS struct {
	tb      testing.TB
	root    string
	shadows string

	mu     sync.Mutex
	files  map[string]*inode    // live path of every file seen -> its inode
	dirs   map[string]*dirState // directories seen, by live path
	nextID int
	full   bool
	ignore func(path string) bool
}

var _ vfs.FS = (*FS)(nil)

// dirState is what a directory holds durably: the entries it had at its
// last sync (or when first seen).
type dirState struct {
	durable map[string]entry
}

// entry is a durable directory entry: a subdirectory, or a file's inode.
type entry struct {
	ino   *inode // nil for a directory
	isDir bool
}

// inode is a file, which may have several names over its life.
type inode struct {
	id   int
	path string // live path; "" once removed
	// shadowed says the durable content is in the shadow file; until the
	// FS changes the file, it is what is on disk.
	shadowed  bool
	dirty     []span // ranges changed since the last sync
	allocated int64  // high-water mark of the blocks the file has, for SetFull
}

type span struct{ off, end int64 }

// New returns an FS over root, an existing directory whose content counts
// as durable. Shadow files and crash images go in tb's temporary
// directories; a failure of the FS's own bookkeeping fails tb.
func New(tb testing.TB, root string) *FS {
	tb.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		tb.Fatalf("crashfs: %v", err)
	}
	return &FS{
		tb:      tb,
		root:    abs,
		shadows: tb.TempDir(),
		files:   map[string]*inode{},
		dirs:    map[string]*dirState{},
	}
}

// Root is the directory the FS simulates.
func (fs *FS) Root() string { return fs.root }

// SetFull makes writes that need new disk blocks fail with ENOSPC (true)
// or succeed again (false). A write needs new blocks past the highest
// offset the file had written or allocated (vfs.Allocate); removing files
// and writing inside allocated space still work, as on a full disk.
func (fs *FS) SetFull(full bool) {
	fs.mu.Lock()
	fs.full = full
	fs.mu.Unlock()
}

// IgnoreSyncs makes Sync of the files, and SyncDir of the directories,
// whose path match returns true do nothing: a test shows with it that a
// missing sync makes it fail. nil syncs everything again.
func (fs *FS) IgnoreSyncs(match func(path string) bool) {
	fs.mu.Lock()
	fs.ignore = match
	fs.mu.Unlock()
}

func (fs *FS) within(p string) bool {
	return p == fs.root || strings.HasPrefix(p, fs.root+string(filepath.Separator))
}

func clean(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	return abs
}

func (fs *FS) fatal(err error) {
	fs.tb.Helper()
	fs.tb.Errorf("crashfs: %v", err)
	panic(fmt.Sprintf("crashfs: %v", err))
}

// track starts following dir: what it holds now is durable.
func (fs *FS) track(dir string) *dirState {
	if st := fs.dirs[dir]; st != nil {
		return st
	}
	st := &dirState{durable: map[string]entry{}}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		fs.fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			st.durable[e.Name()] = entry{isDir: true}
		} else {
			st.durable[e.Name()] = entry{ino: fs.adopt(p)}
		}
	}
	fs.dirs[dir] = st
	return st
}

// adopt returns the inode of the file at p, making one for a file made
// outside the FS: its content on disk counts as durable.
func (fs *FS) adopt(p string) *inode {
	if ino := fs.files[p]; ino != nil {
		return ino
	}
	fs.nextID++
	ino := &inode{id: fs.nextID, path: p}
	if st, err := os.Stat(p); err == nil {
		ino.allocated = st.Size()
	}
	fs.files[p] = ino
	return ino
}

func (fs *FS) shadowPath(ino *inode) string {
	return filepath.Join(fs.shadows, strconv.Itoa(ino.id))
}

// preserve copies an inode's durable content into its shadow before the FS
// changes or removes the file on disk.
func (fs *FS) preserve(ino *inode) {
	if ino.shadowed {
		return
	}
	if err := copyFile(ino.path, fs.shadowPath(ino)); err != nil {
		fs.fatal(err)
	}
	ino.shadowed = true
}

func (ino *inode) mark(off, end int64) {
	if end <= off {
		return
	}
	if n := len(ino.dirty); n > 0 && ino.dirty[n-1].end >= off && ino.dirty[n-1].off <= end {
		last := &ino.dirty[n-1]
		last.off, last.end = min(last.off, off), max(last.end, end)
		return
	}
	ino.dirty = append(ino.dirty, span{off, end})
}

// syncFile copies the ranges of f changed since the last sync into the
// shadow, which then holds what f holds.
func (fs *FS) syncFile(f *os.File, ino *inode) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !ino.shadowed {
		return nil // never changed through the FS: the disk has it
	}
	sh, err := os.OpenFile(fs.shadowPath(ino), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		fs.fatal(err)
	}
	defer sh.Close()
	// Read through a descriptor of its own: f may be write-only, and its
	// name may be gone.
	r, err := os.Open(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		fs.fatal(err)
	}
	defer r.Close()
	for _, s := range ino.dirty {
		end := min(s.end, st.Size())
		if end <= s.off {
			continue
		}
		// In the kernel: a test under -race would check every byte of a
		// user-space buffer.
		for off := s.off; off < end; {
			roff, woff := off, off
			n, err := unix.CopyFileRange(int(r.Fd()), &roff, int(sh.Fd()), &woff, int(end-off), 0)
			if err != nil || n == 0 {
				fs.fatal(fmt.Errorf("copy to shadow: %d bytes copied at %d: %v", n, off, err))
			}
			off += int64(n)
		}
	}
	if err := sh.Truncate(st.Size()); err != nil {
		fs.fatal(err)
	}
	ino.dirty = nil
	return nil
}

func (fs *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	name = clean(name)
	if !fs.within(name) {
		return vfs.OS.OpenFile(name, flag, perm)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent := fs.track(filepath.Dir(name))
	_, statErr := os.Lstat(name)
	existed := statErr == nil
	var ino *inode
	if existed {
		known := fs.files[name] != nil
		ino = fs.adopt(name)
		if !known {
			// Made outside the FS since the directory was seen: as durable
			// as the disk has it.
			parent.durable[filepath.Base(name)] = entry{ino: ino}
		}
		if flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
			fs.preserve(ino)
		}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if !existed {
		fs.nextID++
		ino = &inode{id: fs.nextID, path: name, shadowed: true}
		if err := os.WriteFile(fs.shadowPath(ino), nil, 0o600); err != nil {
			fs.fatal(err)
		}
		fs.files[name] = ino
	} else if flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		ino.mark(0, 1<<62)
	}
	return &file{File: f, fs: fs, ino: ino}, nil
}

func (fs *FS) Rename(oldpath, newpath string) error {
	oldpath, newpath = clean(oldpath), clean(newpath)
	if !fs.within(oldpath) && !fs.within(newpath) {
		return os.Rename(oldpath, newpath)
	}
	if !fs.within(oldpath) || !fs.within(newpath) {
		return fmt.Errorf("crashfs: rename %s to %s: crosses the root", oldpath, newpath)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.track(filepath.Dir(oldpath))
	fs.track(filepath.Dir(newpath))
	st, err := os.Lstat(oldpath)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("crashfs: rename %s: renaming directories is not simulated", oldpath)
	}
	ino := fs.adopt(oldpath)
	if victim := fs.files[newpath]; victim != nil && victim != ino {
		fs.preserve(victim)
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	if victim := fs.files[newpath]; victim != nil {
		victim.path = ""
	}
	delete(fs.files, oldpath)
	fs.files[newpath] = ino
	ino.path = newpath
	return nil
}

func (fs *FS) Remove(name string) error {
	name = clean(name)
	if !fs.within(name) {
		return os.Remove(name)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.track(filepath.Dir(name))
	st, err := os.Lstat(name)
	if err != nil {
		return err
	}
	if st.IsDir() {
		if err := os.Remove(name); err != nil {
			return err
		}
		delete(fs.dirs, name)
		return nil
	}
	ino := fs.adopt(name)
	fs.preserve(ino)
	if err := os.Remove(name); err != nil {
		return err
	}
	delete(fs.files, name)
	ino.path = ""
	return nil
}

// RemoveAll removes path and what it holds, durably at once.
func (fs *FS) RemoveAll(path string) error {
	path = clean(path)
	if !fs.within(path) || path == fs.root {
		return os.RemoveAll(path)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	parent := fs.track(filepath.Dir(path))
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	delete(parent.durable, filepath.Base(path))
	under := func(p string) bool { return p == path || strings.HasPrefix(p, path+string(filepath.Separator)) }
	for p, ino := range fs.files {
		if under(p) {
			ino.path = ""
			delete(fs.files, p)
		}
	}
	for p := range fs.dirs {
		if under(p) {
			delete(fs.dirs, p)
		}
	}
	return nil
}

func (fs *FS) MkdirAll(path string, perm os.FileMode) error {
	path = clean(path)
	if !fs.within(path) {
		return os.MkdirAll(path, perm)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var missing []string
	for p := path; fs.within(p); p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		missing = append(missing, p)
	}
	if err := os.MkdirAll(filepath.Dir(fs.root), 0o700); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		fs.track(filepath.Dir(p))
		if err := os.Mkdir(p, perm); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		fs.dirs[p] = &dirState{durable: map[string]entry{}}
	}
	return nil
}

func (fs *FS) Chmod(name string, mode os.FileMode) error { return os.Chmod(name, mode) }

func (fs *FS) ReadDir(name string) ([]os.DirEntry, error) { return os.ReadDir(name) }

func (fs *FS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// SyncDir makes dir's entries, as they are now, what a crash leaves.
func (fs *FS) SyncDir(dir string) error {
	dir = clean(dir)
	if !fs.within(dir) {
		return vfs.OS.SyncDir(dir)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.ignore != nil && fs.ignore(dir) {
		return nil
	}
	st := fs.track(dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	st.durable = map[string]entry{}
	for _, e := range ents {
		if e.IsDir() {
			st.durable[e.Name()] = entry{isDir: true}
		} else {
			st.durable[e.Name()] = entry{ino: fs.adopt(filepath.Join(dir, e.Name()))}
		}
	}
	return nil
}

// Crash returns a new directory holding what root would hold after a power
// cut now. The FS goes on working (the store that was cut can be closed,
// whatever it writes then does not reach the copy); a new FS over the
// returned directory simulates the next power cut.
func (fs *FS) Crash() string {
	fs.tb.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	img := fs.tb.TempDir()
	fs.build(fs.root, img)
	return img
}

// build copies what survives of the live directory dir into img.
func (fs *FS) build(dir, img string) {
	st := fs.dirs[dir]
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		fs.fatal(err)
	}
	keep := map[string]entry{}
	if st != nil {
		for name, e := range st.durable {
			keep[name] = e
		}
	}
	// Entries made by code outside the FS are taken as they are, and so is
	// all of a directory the FS never saw.
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir() && (st == nil || fs.dirs[p] == nil):
			keep[e.Name()] = entry{isDir: true}
		case !e.IsDir() && fs.files[p] == nil:
			keep[e.Name()] = entry{ino: &inode{path: p}}
		}
	}
	for name, e := range keep {
		dst := filepath.Join(img, name)
		if e.isDir {
			if err := os.Mkdir(dst, 0o700); err != nil {
				fs.fatal(err)
			}
			fs.build(filepath.Join(dir, name), dst)
			continue
		}
		src := e.ino.path
		if e.ino.shadowed {
			src = fs.shadowPath(e.ino)
		}
		if err := copyFile(src, dst); err != nil {
			fs.fatal(fmt.Errorf("copy %s for the crash image: %w", name, err))
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// file is an open file of the FS.
type file struct {
	*os.File
	fs  *FS
	ino *inode
}

var (
	_ vfs.File        = (*file)(nil)
	_ vfs.Allocator   = (*file)(nil)
	_ vfs.HolePuncher = (*file)(nil)
)

func (f *file) noSpace(op string, end int64) error {
	if f.fs.full && end > f.ino.allocated {
		return &os.PathError{Op: op, Path: f.Name(), Err: syscall.ENOSPC}
	}
	return nil
}

func (f *file) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	off, err := f.File.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if err := f.noSpace("write", off+int64(len(p))); err != nil {
		return 0, err
	}
	f.fs.preserve(f.ino)
	n, err := f.File.Write(p)
	f.wrote(off, off+int64(n))
	return n, err
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.noSpace("write", off+int64(len(p))); err != nil {
		return 0, err
	}
	f.fs.preserve(f.ino)
	n, err := f.File.WriteAt(p, off)
	f.wrote(off, off+int64(n))
	return n, err
}

func (f *file) wrote(off, end int64) {
	f.ino.mark(off, end)
	f.ino.allocated = max(f.ino.allocated, end)
}

func (f *file) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

// ReadFrom hides *os.File's, which would write around the FS.
func (f *file) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{f}, r)
}

func (f *file) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	st, err := f.File.Stat()
	if err != nil {
		return err
	}
	f.fs.preserve(f.ino)
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.ino.mark(min(size, st.Size()), max(size, st.Size()))
	f.ino.allocated = min(f.ino.allocated, size)
	return nil
}

// Sync makes the file's data and size durable; it does not call fsync,
// which the simulation does not need.
func (f *file) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.ignore != nil && f.fs.ignore(f.ino.path) {
		return nil
	}
	return f.fs.syncFile(f.File, f.ino)
}

func (f *file) Allocate(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.noSpace("fallocate", off+n); err != nil {
		return err
	}
	st, err := f.File.Stat()
	if err != nil {
		return err
	}
	f.fs.preserve(f.ino)
	if st.Size() < off+n {
		if err := f.File.Truncate(off + n); err != nil {
			return err
		}
		f.ino.mark(st.Size(), off+n)
	}
	f.ino.allocated = max(f.ino.allocated, off+n)
	return nil
}

func (f *file) PunchHole(off, n int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.fs.preserve(f.ino)
	if err := unix.Fallocate(int(f.File.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return err
	}
	f.ino.mark(off, off+n)
	return nil
}
