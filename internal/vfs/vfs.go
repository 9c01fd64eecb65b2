// Package vfs is the file and directory operations that storage makes
// durable (the boltlog's log segments, blob data files), behind an interface
// so that tests can run them on a file system that simulates a power cut
// (vfs/crashfs). In production it is the operating system's, OS, and the
// files it opens are *os.File themselves, so nothing is wrapped.
package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// File is an open file. *os.File is one.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Seeker
	io.Closer
	Name() string
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	// Sync makes what was written durable, size included. Use Datasync,
	// which is fdatasync on an *os.File.
	Sync() error
}

// FS is a file system: paths are the operating system's.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Rename(oldpath, newpath string) error
	Remove(name string) error
	RemoveAll(path string) error
	MkdirAll(path string, perm os.FileMode) error
	Chmod(name string, mode os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the creations, renames and removals of entries in dir
	// durable, which syncing the files themselves does not.
	SyncDir(dir string) error
}

// OS is the operating system's file system.
var OS FS = osFS{}

type osFS struct{}

var _ FS = osFS{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return f, nil
}

func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(path string) error                  { return os.RemoveAll(path) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) Chmod(name string, mode os.FileMode) error    { return os.Chmod(name, mode) }
func (osFS) ReadDir(name string) ([]os.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) Stat(name string) (os.FileInfo, error)        { return os.Stat(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Or returns fs, or OS when fs is nil: the zero value of an options struct
// means the real disk.
func Or(fs FS) FS {
	if fs == nil {
		return OS
	}
	return fs
}

// Datasync makes f's data durable: fdatasync on an *os.File, which skips
// metadata a read does not need (times), Sync on others.
func Datasync(f File) error {
	if of, ok := f.(*os.File); ok {
		return unix.Fdatasync(int(of.Fd()))
	}
	return f.Sync()
}

// The optional operations below are one-method interfaces a File may have;
// an *os.File does them with fallocate(2) and sync_file_range(2).

// Allocator reserves disk space for a range of a file.
type Allocator interface {
	Allocate(off, n int64) error
}

// Allocate reserves the disk blocks of [off, off+n) in f, growing it to
// off+n when it is shorter, so that later writes there cannot fail for
// want of space. Where the file system cannot, it only sets the size.
func Allocate(f File, off, n int64) error {
	switch f := f.(type) {
	case *os.File:
		err := unix.Fallocate(int(f.Fd()), 0, off, n)
		if !errors.Is(err, syscall.EOPNOTSUPP) {
			return err
		}
	case Allocator:
		return f.Allocate(off, n)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() < off+n {
		return f.Truncate(off + n)
	}
	return nil
}

// HolePuncher zeroes a range of a file, freeing its blocks.
type HolePuncher interface {
	PunchHole(off, n int64) error
}

// PunchHole zeroes [off, off+n) of f and frees its disk blocks, keeping
// the file's size.
func PunchHole(f File, off, n int64) error {
	switch f := f.(type) {
	case *os.File:
		return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	case HolePuncher:
		return f.PunchHole(off, n)
	}
	return errors.ErrUnsupported
}

// StartWriteback asks the kernel to start writing [off, off+n) of f to
// disk without waiting, so that a later sync has less to do. It is a
// hint: files other than *os.File ignore it.
func StartWriteback(f File, off, n int64) {
	if of, ok := f.(*os.File); ok {
		_ = unix.SyncFileRange(int(of.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}
}

// ReadFile reads the whole file name.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// MkdirPrivate makes dir and its missing parents, readable by their owner
// only, and syncs the parent of each directory it made, so that they
// survive a power cut. dir itself is made owner-only also when an earlier
// version made it with a wider mode.
func MkdirPrivate(fs FS, dir string) error {
	var missing []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := fs.Stat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		missing = append(missing, p)
	}
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, p := range missing {
		if err := fs.SyncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	st, err := fs.Stat(dir)
	if err != nil {
		return err
	}
	if st.Mode().Perm() != 0o700 {
		return fs.Chmod(dir, 0o700)
	}
	return nil
}
