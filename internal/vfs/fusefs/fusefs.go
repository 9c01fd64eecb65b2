// Package fusefs serves a directory of a vfs.FS over FUSE, so that code
// which does its own file I/O (bbolt opens, writes, syncs and maps its
// file itself) goes through the FS all the same: a test mounts a
// crashfs.FS and runs the store on the mount, and crashfs sees every
// write and every fsync the store makes.
//
// The layer is thin: each FUSE operation is one call of the FS or of a
// vfs.File it opened, and nothing is cached in between (entry and
// attribute timeouts are 0, and the kernel's page cache is dropped when a
// file is opened), so what the kernel shows is what the FS holds. fsync
// and fdatasync of a file are File.Sync; fsync of a directory is
// FS.SyncDir. File locks (flock, fcntl) are left to the kernel, which
// keeps them locally when the server does not take them: they work
// between the processes on this machine, which is all a test needs.
// Symbolic links are followed, never shown; times cannot be set.
//
// Do not use the mount from the process that serves it where a page
// fault may reach the mount (a memory map): the faulting thread keeps
// its Go scheduler slot, and a garbage collection that stops the world
// then waits for it while the server that would answer the fault is
// stopped. Run such a store in another process.
package fusefs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/weftcloud/weft/internal/vfs"
)

// Available says whether this process can mount a FUSE file system: it
// needs /dev/fuse and the right to mount (root), since Mount calls
// mount(2) itself rather than a fusermount binary.
func Available() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("fusefs: cannot open /dev/fuse: %w", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		return errors.New("fusefs: mounting needs root")
	}
	return nil
}

// Server is a mounted FS.
type Server struct {
	srv        *fuse.Server
	mountpoint string
}

// Mount serves the directory root of fsys at mountpoint, an existing
// empty directory, until Unmount.
func Mount(mountpoint string, fsys vfs.FS, root string) (*Server, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fusefs: mount %s: %w", root, err)
	}
	st, err := fsys.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("fusefs: mount %s: %w", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("fusefs: mount %s: not a directory", root)
	}
	var zero time.Duration
	opts := &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName:            "weft-fusefs",
			Name:              "weftfs",
			DirectMountStrict: true,
			DisableXAttrs:     true,
		},
	}
	r := &tree{fs: fsys, root: root}
	srv, err := fs.Mount(mountpoint, &node{tree: r}, opts)
	if err != nil {
		return nil, fmt.Errorf("fusefs: mount %s at %s: %w", root, mountpoint, err)
	}
	return &Server{srv: srv, mountpoint: mountpoint}, nil
}

// Unmount unmounts the FS and waits for the server to stop. When files
// are still open on it, it detaches the mount (the kernel finishes the
// unmount when they are closed) and returns the error of the first try,
// so that a failed test leaves no mount behind.
func (s *Server) Unmount() error {
	err := s.srv.Unmount()
	if err == nil {
		return nil
	}
	if derr := syscall.Unmount(s.mountpoint, syscall.MNT_DETACH); derr != nil && !errors.Is(derr, syscall.EINVAL) {
		return fmt.Errorf("fusefs: unmount %s: %w (detach: %v)", s.mountpoint, err, derr)
	}
	return fmt.Errorf("fusefs: unmount %s: %w (detached)", s.mountpoint, err)
}

// tree is what every node of a mount shares.
type tree struct {
	fs   vfs.FS
	root string
}

// node is a file or directory; its path in the FS follows from its place
// in the kernel's tree, which go-fuse keeps up to date across renames.
type node struct {
	fs.Inode
	tree *tree
}

var (
	_ fs.NodeLookuper  = (*node)(nil)
	_ fs.NodeGetattrer = (*node)(nil)
	_ fs.NodeSetattrer = (*node)(nil)
	_ fs.NodeOpener    = (*node)(nil)
	_ fs.NodeCreater   = (*node)(nil)
	_ fs.NodeReader    = (*node)(nil)
	_ fs.NodeWriter    = (*node)(nil)
	_ fs.NodeFsyncer   = (*node)(nil)
	_ fs.NodeFlusher   = (*node)(nil)
	_ fs.NodeReleaser  = (*node)(nil)
	_ fs.NodeAllocater = (*node)(nil)
	_ fs.NodeUnlinker  = (*node)(nil)
	_ fs.NodeRmdirer   = (*node)(nil)
	_ fs.NodeRenamer   = (*node)(nil)
	_ fs.NodeMkdirer   = (*node)(nil)
	_ fs.NodeReaddirer = (*node)(nil)
)

// handle is an open file.
type handle struct{ f vfs.File }

func (n *node) path() string {
	return filepath.Join(n.tree.root, n.Path(n.Root()))
}

func (n *node) child(name string) string { return filepath.Join(n.path(), name) }

// errno is err as the kernel takes it.
func errno(err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e
	case errors.Is(err, os.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, os.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, os.ErrPermission):
		return syscall.EPERM
	case errors.Is(err, errors.ErrUnsupported):
		return syscall.ENOTSUP
	}
	return syscall.EIO
}

// fillAttr sets out from fi, with the inode numbers of the FS below when
// it has them, so that the kernel sees one inode per file across lookups
// and renames.
func fillAttr(out *fuse.Attr, fi os.FileInfo) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.FromStat(st)
		return
	}
	out.Size = uint64(fi.Size())
	out.Mode = uint32(fi.Mode().Perm())
	if fi.IsDir() {
		out.Mode |= syscall.S_IFDIR
	} else {
		out.Mode |= syscall.S_IFREG
	}
	out.SetTimes(nil, new(fi.ModTime()), nil)
}

func (n *node) newChild(ctx context.Context, fi os.FileInfo, out *fuse.EntryOut) *fs.Inode {
	fillAttr(&out.Attr, fi)
	return n.NewInode(ctx, &node{tree: n.tree}, fs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT, Ino: out.Attr.Ino})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	fi, err := n.tree.fs.Stat(n.child(name))
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, fi, out), 0
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var fi os.FileInfo
	var err error
	if h, ok := fh.(*handle); ok {
		fi, err = h.f.Stat()
	} else {
		fi, err = n.tree.fs.Stat(n.path())
	}
	if err != nil {
		return errno(err)
	}
	fillAttr(&out.Attr, fi)
	return 0
}

// Setattr changes the size (truncate, ftruncate) and the mode; the FS has
// no owners to change, and times set are ignored, as the FS cannot keep
// them.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := in.GetUID(); ok {
		return syscall.ENOTSUP
	}
	if _, ok := in.GetGID(); ok {
		return syscall.ENOTSUP
	}
	if mode, ok := in.GetMode(); ok {
		if err := n.tree.fs.Chmod(n.path(), os.FileMode(mode)); err != nil {
			return errno(err)
		}
	}
	if size, ok := in.GetSize(); ok {
		h, ok := fh.(*handle)
		if !ok {
			f, err := n.tree.fs.OpenFile(n.path(), os.O_WRONLY, 0)
			if err != nil {
				return errno(err)
			}
			defer f.Close()
			h = &handle{f: f}
		}
		if err := h.f.Truncate(int64(size)); err != nil {
			return errno(err)
		}
	}
	return n.Getattr(ctx, fh, out)
}

// openFlags are the flags of open(2) the FS gets: the kernel handles
// O_APPEND (it writes at the size it knows) and O_CREAT (Create), and
// would make WriteAt fail on a file opened for appending.
func openFlags(flags uint32) int {
	return int(flags) & (syscall.O_ACCMODE | syscall.O_TRUNC)
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f, err := n.tree.fs.OpenFile(n.path(), openFlags(flags), 0)
	if err != nil {
		return nil, 0, errno(err)
	}
	// No FOPEN_KEEP_CACHE: the kernel drops the file's cached pages at
	// each open, so a map of the file shows what the FS holds.
	return &handle{f: f}, 0, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	p := n.child(name)
	f, err := n.tree.fs.OpenFile(p, openFlags(flags)|os.O_CREATE|int(flags)&syscall.O_EXCL, os.FileMode(mode&0o7777))
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, 0, errno(err)
	}
	return n.newChild(ctx, fi, out), &handle{f: f}, 0, 0
}

func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	m, err := h.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:m]), 0
}

func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return 0, syscall.EBADF
	}
	m, err := h.f.WriteAt(data, off)
	if err != nil {
		return uint32(m), errno(err)
	}
	return uint32(m), 0
}

// Fsync is File.Sync for a file, fsync and fdatasync alike (the FS has
// one sync), and SyncDir for a directory.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if n.IsDir() {
		return errno(n.tree.fs.SyncDir(n.path()))
	}
	h, ok := fh.(*handle)
	if !ok {
		return syscall.EBADF
	}
	return errno(h.f.Sync())
}

// Flush is each close(2) of a descriptor; the file is closed when the
// last one is (Release).
func (n *node) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

func (n *node) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	h, ok := fh.(*handle)
	if !ok {
		return 0
	}
	return errno(h.f.Close())
}

// Allocate is fallocate(2) without flags, which reserves space and grows
// the file; the others (punching holes, keeping the size) are not served.
func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	h, ok := fh.(*handle)
	if !ok {
		return syscall.EBADF
	}
	if mode != 0 {
		return syscall.EOPNOTSUPP
	}
	return errno(vfs.Allocate(h.f, int64(off), int64(size)))
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return errno(n.tree.fs.Remove(n.child(name)))
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	p := n.child(name)
	fi, err := n.tree.fs.Stat(p)
	if err != nil {
		return errno(err)
	}
	if !fi.IsDir() {
		return syscall.ENOTDIR
	}
	return errno(n.tree.fs.Remove(p))
}

// Rename is rename(2); renameat2's flags (no replace, exchange) are not
// served.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if flags != 0 {
		return syscall.EINVAL
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	return errno(n.tree.fs.Rename(n.child(name), np.child(newName)))
}

// Mkdir makes one directory. The FS only has MkdirAll, so an existing
// name is checked first: two racing mkdirs of one name may both succeed.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	p := n.child(name)
	if _, err := n.tree.fs.Stat(p); err == nil {
		return nil, syscall.EEXIST
	}
	if err := n.tree.fs.MkdirAll(p, os.FileMode(mode&0o7777)); err != nil {
		return nil, errno(err)
	}
	fi, err := n.tree.fs.Stat(p)
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, fi, out), 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	ents, err := n.tree.fs.ReadDir(n.path())
	if err != nil {
		return nil, errno(err)
	}
	list := make([]fuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, errno(err)
		}
		var a fuse.Attr
		fillAttr(&a, fi)
		// An entry needs an inode number: readdir callers (Go's among
		// them) skip entries with 0.
		if a.Ino == 0 {
			a.Ino = 1
		}
		list = append(list, fuse.DirEntry{Name: e.Name(), Mode: a.Mode & syscall.S_IFMT, Ino: a.Ino})
	}
	return fs.NewListDirStream(list), 0
}
