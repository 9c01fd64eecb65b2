package drive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/nbd"
)

// The kernel's nbd path is untested on hosts without the nbd driver,
// which includes the hosts it was written on and Weft's CI: there
// TestKernelNBD skips, and only internal/nbd's test (a client speaking the
// kernel's side of the protocol over a socket pair) and TestChooseDevice
// (a fake /sys) run. It was run once, by hand, in a QEMU guest of Debian
// 12's kernel 6.1 with nbd.ko loaded: this package's test binary (static)
// passed TestKernelNBD, TestFilesOutliveTheMount, TestSyncedFileIsInTheBlob,
// TestFencedDriveRefusesWrites and TestDiskWithOtherDataIsNotFormatted
// through /dev/nbd0. Nothing runs that guest automatically.

// ioctls of the kernel's nbd driver, _IO(0xab, n) in
// include/uapi/linux/nbd.h; golang.org/x/sys/unix does not define them.
const (
	nbdSetSock       = 0xab00 // NBD_SET_SOCK
	nbdSetBlksize    = 0xab01 // NBD_SET_BLKSIZE
	nbdDoIt          = 0xab03 // NBD_DO_IT
	nbdClearSock     = 0xab04 // NBD_CLEAR_SOCK
	nbdSetSizeBlocks = 0xab07 // NBD_SET_SIZE_BLOCKS
	nbdDisconnect    = 0xab08 // NBD_DISCONNECT
	nbdSetFlags      = 0xab0a // NBD_SET_FLAGS
)

// nbdRecord is the file of a drive's Work folder naming the nbd device it
// is attached through, so that what a process that died left is found.
const nbdRecord = "nbd-device"

// nbdDevice is a device of the kernel's nbd driver whose requests this
// process serves: the kernel has one end of a socket pair (NBD_SET_SOCK),
// an nbd.Server the other, and a thread of this process sits in
// NBD_DO_IT, the ioctl in which the kernel drives the device, until the
// device is disconnected.
type nbdDevice struct {
	path   string
	n      int
	record string
	dev    *os.File
	doIt   chan error // NBD_DO_IT's result
	served chan error // the server's
}

// attachNBD attaches disk to the first of the free nbd devices (by number)
// that this process gets: another process may configure one first (the
// kernel answers EBUSY), and then the next is tried. The device is
// recorded in work (nbdRecord).
func attachNBD(ctx context.Context, h hostRoots, disk Disk, free []int, work string, log *slog.Logger) (*nbdDevice, error) {
	for _, n := range free {
		d, err := startNBD(ctx, h, disk, n, log)
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d.record = filepath.Join(work, nbdRecord)
		if err := os.WriteFile(d.record, []byte(filepath.Base(d.path)+"\n"), 0o600); err != nil {
			d.detach()
			return nil, fmt.Errorf("drive: %w", err)
		}
		return d, nil
	}
	return nil, errors.New("drive: every free nbd device was taken by another process first")
}

// startNBD configures nbd device n to be served by this process and waits
// until the kernel runs it.
func startNBD(ctx context.Context, h hostRoots, disk Disk, n int, log *slog.Logger) (*nbdDevice, error) {
	path, err := h.nbdNode(n)
	if err != nil {
		return nil, err
	}
	dev, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("drive: %w", err)
	}
	// Close-on-exec: a process started meanwhile (mkfs, mount) that
	// inherited this process's end would keep the kernel's socket alive
	// after this process died, and the drive's I/O would hang instead of
	// failing.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("drive: socket pair for %s: %w", path, err)
	}
	kernelEnd := fds[0]
	sf := os.NewFile(uintptr(fds[1]), "nbd-server")
	conn, err := net.FileConn(sf)
	sf.Close()
	if err != nil {
		dev.Close()
		unix.Close(kernelEnd)
		return nil, fmt.Errorf("drive: socket pair for %s: %w", path, err)
	}
	srv := &nbd.Server{Name: filepath.Base(path), Backend: disk, Log: log}
	d := &nbdDevice{path: path, n: n, dev: dev, doIt: make(chan error, 1), served: make(chan error, 1)}
	configured := make(chan error, 1)
	go d.run(kernelEnd, disk.Size(), srv.TransmissionFlags(), configured)
	if err := <-configured; err != nil {
		dev.Close()
		conn.Close()
		return nil, fmt.Errorf("drive: configure %s: %w", path, err)
	}
	go func() { d.served <- srv.ServeTransmission(context.Background(), conn) }()
	// NBD_DO_IT makes the device usable, then blocks: the pid file the
	// kernel makes for it says it is running.
	pid := filepath.Join(h.sys, "block", "nbd"+strconv.Itoa(n), "pid")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(pid); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return d, nil
		}
		select {
		case err := <-d.doIt:
			d.doIt <- err
			d.detach()
			return nil, fmt.Errorf("drive: start %s: %v", path, err)
		case <-ctx.Done():
			d.detach()
			return nil, fmt.Errorf("drive: start %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// run configures the device and runs NBD_DO_IT, in one locked thread that
// no signal reaches: the kernel ties a device being set up to the thread
// that gave it its socket (another thread gets EBUSY), and a signal that
// interrupts NBD_DO_IT shuts the device's socket down. The thread is
// never unlocked, so it ends with the goroutine, signals still blocked.
func (d *nbdDevice) run(kernelEnd int, size int64, flags uint16, configured chan<- error) {
	runtime.LockOSThread()
	all := unix.Sigset_t{}
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	fd := int(d.dev.Fd())
	err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil)
	// The socket first: it claims the device (EBUSY for any other
	// process), before any size is set on it. The kernel holds its own
	// reference to the socket from then on.
	if err == nil {
		err = unix.IoctlSetInt(fd, nbdSetSock, kernelEnd)
	}
	unix.Close(kernelEnd)
	// No NBD_SET_TIMEOUT: without one the kernel waits for a request as
	// long as it takes, as the FUSE path does, instead of failing the
	// device while the storage service is slow.
	for _, set := range []struct {
		req uint
		arg int
	}{
		{nbdSetBlksize, nbd.BlockSize},
		{nbdSetSizeBlocks, int(size / nbd.BlockSize)},
		{nbdSetFlags, int(flags)},
	} {
		if err == nil {
			err = unix.IoctlSetInt(fd, set.req, set.arg)
		}
	}
	if err != nil {
		if !errors.Is(err, unix.EBUSY) {
			unix.IoctlSetInt(fd, nbdClearSock, 0)
		}
		configured <- err
		return
	}
	configured <- nil
	d.doIt <- unix.IoctlSetInt(fd, nbdDoIt, 0)
}

func (d *nbdDevice) node() string { return d.path }

// release does nothing: this process keeps the device open, NBD_DO_IT
// runs on it.
func (d *nbdDevice) release() {}

// detach disconnects the device (the kernel sends NBD_CMD_DISC and shuts
// its socket down, and NBD_DO_IT returns), then waits for the server to
// end. ext4 must be unmounted first: every write it made has then been
// answered, so reached the disk.
func (d *nbdDevice) detach() error {
	fd := int(d.dev.Fd())
	var errs []error
	select {
	case err := <-d.doIt:
		d.doIt <- err
	default:
		if err := unix.IoctlSetInt(fd, nbdDisconnect, 0); err != nil {
			errs = append(errs, fmt.Errorf("drive: disconnect %s: %w", d.path, err))
		}
	}
	select {
	case err := <-d.doIt:
		d.doIt <- err
	case <-time.After(10 * time.Second):
		return fmt.Errorf("drive: %s still runs 10s after being disconnected", d.path)
	}
	unix.IoctlSetInt(fd, nbdClearSock, 0)
	d.dev.Close()
	if err := <-d.served; err != nil {
		errs = append(errs, fmt.Errorf("drive: serving %s: %w", d.path, err))
	}
	if d.record != "" {
		os.Remove(d.record)
	}
	return errors.Join(errs...)
}

// nbdNode is /dev/nbdN, made from the device number in /sys/block/nbdN/dev
// where /dev lacks it (a container may have nodes for a few devices only).
func (h hostRoots) nbdNode(n int) (string, error) {
	name := "nbd" + strconv.Itoa(n)
	path := filepath.Join(h.dev, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	b, err := os.ReadFile(filepath.Join(h.sys, "block", name, "dev"))
	if err != nil {
		return "", fmt.Errorf("drive: %w", err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &major, &minor); err != nil {
		return "", fmt.Errorf("drive: the device number of %s: %q", name, b)
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("drive: make %s: %w", path, err)
	}
	return path, nil
}

// clearNBD lets go of the nbd device recorded in work by a process that
// died with the drive attached, unless another process runs it by now.
// Best effort, like the loop device's: the kernel saw the socket close
// with that process, so nothing reaches the disk through it any more.
func clearNBD(h hostRoots, work string) {
	record := filepath.Join(work, nbdRecord)
	b, err := os.ReadFile(record)
	if err != nil {
		return
	}
	name := strings.TrimSpace(string(b))
	n, err := strconv.Atoi(strings.TrimPrefix(name, "nbd"))
	if !strings.HasPrefix(name, "nbd") || err != nil {
		os.Remove(record)
		return
	}
	if pid, err := os.ReadFile(filepath.Join(h.sys, "block", name, "pid")); err == nil && len(strings.TrimSpace(string(pid))) > 0 {
		os.Remove(record)
		return
	}
	if path, err := h.nbdNode(n); err == nil {
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			unix.IoctlSetInt(int(f.Fd()), nbdDisconnect, 0)
			unix.IoctlSetInt(int(f.Fd()), nbdClearSock, 0)
			f.Close()
		}
	}
	os.Remove(record)
}
