package drive

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// fileName is the one file of a drive's FUSE mount.
const fileName = "disk"

// blobFS is the root of a FUSE mount holding one file, the disk.
type blobFS struct {
	fs.Inode
	file *blobFile
}

var _ fs.NodeOnAdder = (*blobFS)(nil)

func (r *blobFS) OnAdd(ctx context.Context) {
	r.AddChild(fileName, r.NewPersistentInode(ctx, r.file, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2}), false)
}

// blobFile is the disk as a file of fixed size. Every read and write is a
// call of the disk: the file is opened with direct I/O, so the kernel
// keeps none of it in its page cache and a write returns only once the
// disk has it.
type blobFile struct {
	fs.Inode
	disk Disk
	log  *slog.Logger
}

var (
	_ fs.NodeOpener    = (*blobFile)(nil)
	_ fs.NodeGetattrer = (*blobFile)(nil)
	_ fs.NodeSetattrer = (*blobFile)(nil)
	_ fs.NodeReader    = (*blobFile)(nil)
	_ fs.NodeWriter    = (*blobFile)(nil)
	_ fs.NodeFsyncer   = (*blobFile)(nil)
	_ fs.NodeFlusher   = (*blobFile)(nil)
	_ fs.NodeAllocater = (*blobFile)(nil)
)

func (f *blobFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *blobFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(f.disk.Size())
	out.Blocks = (out.Size + 511) / 512
	out.Nlink = 1
	return 0
}

// Setattr allows what leaves the file as it is (the kernel sends the
// times and the size it already has); a disk's size is set where it is
// made, never through the file.
func (f *blobFile) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && int64(size) != f.disk.Size() {
		return syscall.EPERM
	}
	return f.Getattr(ctx, fh, out)
}

func (f *blobFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= f.disk.Size() {
		return fuse.ReadResultData(nil), 0
	}
	dest = dest[:min(int64(len(dest)), f.disk.Size()-off)]
	if err := f.disk.ReadAt(context.WithoutCancel(ctx), dest, off); err != nil {
		return nil, f.fail("read", len(dest), off, err)
	}
	return fuse.ReadResultData(dest), 0
}

func (f *blobFile) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if off+int64(len(data)) > f.disk.Size() {
		return 0, syscall.ENOSPC
	}
	// Not cancelled with the request: a write the kernel gave up on (an
	// interrupted writer) is either done whole or reported failed.
	if err := f.disk.WriteAt(context.WithoutCancel(ctx), data, off); err != nil {
		return 0, f.fail("write", len(data), off, err)
	}
	return uint32(len(data)), 0
}

// Fsync is the disk's Flush: nothing is left to write by then, since every
// write reached the storage service before it returned.
func (f *blobFile) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if err := f.disk.Flush(context.WithoutCancel(ctx)); err != nil {
		return f.fail("flush", 0, 0, err)
	}
	return 0
}

func (f *blobFile) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	return f.Fsync(ctx, fh, 0)
}

// Allocate clears the range for FALLOC_FL_PUNCH_HOLE and
// FALLOC_FL_ZERO_RANGE (the loop device turns a discard into a punched
// hole, and the storage service then frees the pages); plain allocation
// has nothing to do, as every page of the disk can already be written.
func (f *blobFile) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	const punch, zero = 0x02, 0x10 // FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE
	if int64(off+size) > f.disk.Size() {
		return syscall.ENOSPC
	}
	if mode&(punch|zero) == 0 {
		return 0
	}
	if err := f.disk.Zero(context.WithoutCancel(ctx), int64(off), int64(size)); err != nil {
		return f.fail("clear", int(size), int64(off), err)
	}
	return 0
}

// fail logs err and answers EIO: the kernel passes it up to the file
// system on the loop device, which reports it to the application.
func (f *blobFile) fail(op string, n int, off int64, err error) syscall.Errno {
	f.log.Warn("drive: I/O failed", "op", op, "bytes", n, "offset", off, "err", err)
	return syscall.EIO
}

// mountBlob serves disk as dir/disk until the server is unmounted.
func mountBlob(dir string, disk Disk, log *slog.Logger) (*fuse.Server, error) {
	var zero time.Duration
	root := &blobFS{file: &blobFile{disk: disk, log: log}}
	// go-fuse (2.12.1) opens /dev/fuse without O_CLOEXEC and, mounting
	// directly, never sets it: every process started afterwards would
	// inherit the descriptor and keep the FUSE connection alive after this
	// process died, so that the drive's I/O (the last unmount of its ext4
	// among it) would hang instead of failing. ForkLock keeps forks out
	// until the descriptor is marked.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	defer closeFUSEOnExec()
	srv, err := fs.Mount(dir, root, &fs.Options{
		EntryTimeout: &zero,
		AttrTimeout:  &zero,
		MountOptions: fuse.MountOptions{
			FsName:            "weft-drive",
			Name:              "weftdrive",
			DirectMountStrict: true,
			DisableXAttrs:     true,
			MaxWrite:          1 << 20,
			// Reads answer from memory: splicing only copies once more
			// (and logs that a 1 MiB read does not fit a pipe).
			DisableSplice: true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("drive: serve the disk at %s: %w", dir, err)
	}
	return srv, nil
}

// closeFUSEOnExec marks this process's /dev/fuse descriptors close-on-exec.
func closeFUSEOnExec() {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target == "/dev/fuse" {
			syscall.CloseOnExec(fd)
		}
	}
}
