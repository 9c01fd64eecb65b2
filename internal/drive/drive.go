// Package drive mounts a page blob of the storage service as an ext4 file
// system on a node, for the drives of process and container instances.
//
// Where the kernel's nbd driver is loaded (or loadable) and has a free
// device, the disk is attached through it: the kernel has one end of a
// socket pair and this process serves the disk on the other with
// internal/nbd (nbdkernel.go). That path is untested on hosts without the
// driver, which is every host it was written on (see nbdkernel.go); a
// write is answered only once the disk has it and a flush only once the
// disk's Flush returned, the rule below. chooseDevice picks the path
// (device.go); $WEFT_DRIVE_DEVICE=fuse-loop forces the other one.
//
// The kernel's nbd driver is not on every host (the hosts Weft's CI runs on
// have no loadable modules), but FUSE and loop devices are. There the disk
// (a vmdisk.Disk: the page blob, written under the drive's lease) is
// served as the one file of a FUSE mount, a loop device is bound to that
// file, and ext4 on the loop device is mounted where the instance wants
// it. The file is opened with direct I/O: nothing is cached in the
// kernel below ext4, so every write the loop device makes is a Put Page
// that the storage service made durable before the write returns, and an
// fsync of ext4 (a flush of the loop device, an fsync of the FUSE file)
// has nothing left to send. The read cache (cache.go) keeps recently read
// 64 KiB chunks and is written through, never back.
//
// Fencing is the disk's: once another node holds the lease, every write
// fails with EIO, ext4 reports it to the application (a failed fsync) and
// then turns read-only (errors=remount-ro).
//
// The FUSE server runs in the process that attaches the drive: on a node,
// a drive server of its own (internal/driveproc), so that the drive
// outlives the agent. That process must not touch the drive's files through a memory map (a page
// fault on the mount would hold the Go scheduler while the server that
// answers it waits to run, see internal/vfs/fusefs); reads, writes and
// fsyncs are system calls and are fine.
package drive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Disk is the block storage behind a drive: a vmdisk.Disk. Its writes
// must be durable when they return; Flush is called for every fsync.
type Disk interface {
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) error
	WriteAt(ctx context.Context, p []byte, off int64) error
	Zero(ctx context.Context, off, n int64) error
	Flush(ctx context.Context) error
}

// DefaultCache is the read cache of a drive attached without one.
const DefaultCache = 32 << 20

// Options say where a drive is mounted.
type Options struct {
	// Work is a folder of the drive's own, where its disk is served as a
	// file (Work/blob/disk); it is made if missing.
	Work string
	// Mount is the folder ext4 is mounted on; it is made if missing.
	Mount string
	// Cache is the read cache's size in bytes (DefaultCache if 0).
	Cache int64
	// Device is how the drive becomes a block device (DeviceAuto: see
	// chooseDevice).
	Device Device
	Log    *slog.Logger
}

// Drive is an attached drive.
type Drive struct {
	opt Options
	how Device
	srv *fuse.Server // the FUSE path's
	dev blockDevice
}

// blockDevice is the device ext4 is made and mounted on: a loop device or
// an nbd device.
type blockDevice interface {
	node() string // its /dev path
	// release lets go of what is not needed once ext4 is mounted.
	release()
	// detach takes the device down once ext4 is unmounted.
	detach() error
}

var (
	_ blockDevice = (*loopDevice)(nil)
	_ blockDevice = (*nbdDevice)(nil)
)

// Available says whether this process can attach drives with Options.Device
// unset: it needs root and mkfs.ext4, and the device chooseDevice picks: a
// free nbd device, or /dev/fuse and the loop driver.
func Available() error { return available(DeviceAuto) }

func available(dev Device) error {
	if os.Geteuid() != 0 {
		return errors.New("drive: attaching a drive needs root (mount, block devices)")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		return errors.New("drive: mkfs.ext4 is not installed (apt-get install e2fsprogs)")
	}
	c, err := realHost.chooseDevice(dev)
	if err != nil || c.device == DeviceNBD {
		return err
	}
	for _, dev := range []string{"/dev/fuse", "/dev/loop-control"} {
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("drive: %w", err)
		}
		f.Close()
	}
	return nil
}

// Attach mounts disk's ext4 file system at opt.Mount, making it first if
// the disk is blank (its first 64 KiB all zeros). A disk that holds
// something else than ext4 is refused, never formatted over. What a
// process that died left mounted at opt.Mount or opt.Work is cleared
// first.
func Attach(ctx context.Context, disk Disk, opt Options) (*Drive, error) {
	if opt.Cache == 0 {
		opt.Cache = DefaultCache
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	c, err := realHost.chooseDevice(opt.Device)
	if err != nil {
		return nil, err
	}
	opt.Log.Info("drive: attaching", "device", c.device, "why", c.why, "mount", opt.Mount)
	d := &Drive{opt: opt, how: c.device}
	blobDir := filepath.Join(opt.Work, "blob")
	if err := clearStale(opt); err != nil {
		return nil, err
	}
	cd := newCached(disk, opt.Cache)
	blank, err := blank(ctx, cd)
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{blobDir, opt.Mount} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("drive: %w", err)
		}
	}
	if c.device == DeviceNBD {
		d.dev, err = attachNBD(ctx, realHost, cd, c.nbd, opt.Work, opt.Log)
		if err != nil {
			return nil, err
		}
	} else {
		if err := sharedMountPoint(blobDir); err != nil {
			return nil, err
		}
		if d.srv, err = mountBlob(blobDir, cd, opt.Log); err != nil {
			unbind(blobDir)
			return nil, err
		}
		loop, err := attachLoop(filepath.Join(blobDir, fileName))
		if err != nil {
			d.Detach()
			return nil, err
		}
		d.dev = loop
	}
	if blank {
		// The blob reads as zeros where it was never written, so the
		// inode tables and the journal need no zeroing now or later.
		out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0",
			"-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", d.dev.node()).CombinedOutput()
		if err != nil {
			d.Detach()
			return nil, fmt.Errorf("drive: mkfs.ext4: %w: %s", err, out)
		}
	}
	if err := sharedMountPoint(opt.Mount); err != nil {
		d.Detach()
		return nil, err
	}
	// mount(8), not mount(2) here: see unmount.
	if out, err := exec.CommandContext(ctx, "mount", "-t", "ext4", "-o", "noatime,errors=remount-ro,noinit_itable", d.dev.node(), opt.Mount).CombinedOutput(); err != nil {
		d.Detach()
		return nil, fmt.Errorf("drive: mount %s at %s: %w: %s", d.dev.node(), opt.Mount, err, bytes.TrimSpace(out))
	}
	d.dev.release()
	return d, nil
}

// blank says whether the disk was never formatted: no ext4 superblock, and
// zeros where one would be. A disk with other bytes there is an error.
func blank(ctx context.Context, disk Disk) (bool, error) {
	head := make([]byte, min(64<<10, disk.Size()))
	if err := disk.ReadAt(ctx, head, 0); err != nil {
		return false, fmt.Errorf("drive: read the superblock: %w", err)
	}
	const magicAt = 1024 + 0x38 // s_magic in the superblock at 1024
	if len(head) >= magicAt+2 && binary.LittleEndian.Uint16(head[magicAt:]) == 0xEF53 {
		return false, nil
	}
	for _, b := range head {
		if b != 0 {
			return false, errors.New("drive: the disk holds data but no ext4 file system; it is left as it is")
		}
	}
	return true, nil
}

// Path is the folder the drive is mounted on.
func (d *Drive) Path() string { return d.opt.Mount }

// Device is the block device the drive is attached through (DeviceNBD or
// DeviceFUSELoop).
func (d *Drive) Device() Device { return d.how }

// Detach unmounts the file system (which writes what ext4 still holds),
// takes the block device down and stops serving the disk. It fails,
// leaving the drive mounted, while files on it are open.
func (d *Drive) Detach() error {
	var errs []error
	if d.dev != nil {
		if err := unmount(d.opt.Mount); err != nil {
			return err
		}
		unbind(d.opt.Mount)
		if err := d.dev.detach(); err != nil {
			errs = append(errs, err)
		}
		d.dev = nil
	}
	if d.srv != nil {
		if err := d.srv.Unmount(); err != nil {
			blobDir := filepath.Join(d.opt.Work, "blob")
			errs = append(errs, withUsers(fmt.Errorf("drive: stop serving the disk: %w", err), blobDir, "", deviceOf(blobDir)))
		} else {
			d.srv.Wait()
			d.srv = nil
			unbind(filepath.Join(d.opt.Work, "blob"))
		}
	}
	return errors.Join(errs...)
}

// unmount unmounts dir if something is mounted there, waiting a moment
// for a busy file system (a process that just ended still closing files).
//
// It runs umount(8), a process of its own, because ext4's last writes go
// through this process's FUSE server: a thread of this process waiting in
// the kernel for them cannot be killed, so a kill -9 at that moment left a
// process that never exited and never closed its FUSE connection, and the
// writes waited for it forever. A umount of its own fails instead once
// this process dies and its FUSE connection with it. mount(8) in Attach
// for the same reason (mounting reads the superblock through the server).
func unmount(dir string) error {
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := exec.Command("umount", dir).CombinedOutput()
		switch {
		case err == nil, bytes.Contains(out, []byte("not mounted")), bytes.Contains(out, []byte("no mount point")):
			return nil
		case !bytes.Contains(out, []byte("busy")):
			return fmt.Errorf("drive: unmount %s: %w: %s", dir, err, bytes.TrimSpace(out))
		case time.Now().After(deadline):
			return withUsers(fmt.Errorf("drive: unmount %s: %w: %s", dir, err, bytes.TrimSpace(out)), dir, "", deviceOf(dir))
		}
	}
}

// Clear takes down what a process that died with a drive attached (with
// opt.Work and opt.Mount) left of it on this node, as Attach does first.
func Clear(opt Options) error {
	return clearStale(opt)
}

// clearStale takes down what a process that died with the drive attached
// left behind: ext4 still mounted, on an nbd device whose socket closed
// with that process or on a loop device bound to a FUSE file whose server
// is gone. Detached lazily: nothing can reach the disk through them any
// more anyway.
func clearStale(opt Options) error {
	mount, blobDir := opt.Mount, filepath.Join(opt.Work, "blob")
	file := filepath.Join(blobDir, fileName)
	dev, err := loopOf(file)
	if err != nil {
		return err
	}
	if err := detachAll(mount); err != nil {
		return err
	}
	if dev != "" {
		if f, err := os.OpenFile(dev, os.O_RDWR, 0); err == nil {
			unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
			f.Close()
		}
	}
	clearNBD(realHost, opt.Work)
	return detachAll(blobDir)
}

// detachAll lazily unmounts everything mounted at dir: a file system and
// the bind under it (sharedMountPoint).
func detachAll(dir string) error {
	for range 4 {
		err := unix.Unmount(dir, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("drive: unmount %s: %w", dir, err)
		}
	}
	return fmt.Errorf("drive: %s is still a mount point after 4 unmounts", dir)
}
