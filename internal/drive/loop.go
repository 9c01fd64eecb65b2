package drive

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// loopMajor is the loop driver's block major number.
const loopMajor = 7

// loopDevice is a loop device bound to a file.
type loopDevice struct {
	path    string
	n       int
	backing string
	f       *os.File // held open until ext4 is mounted on it (release), or until detach
}

// attachLoop binds a free loop device to the file at backing, with
// LOOP_CONFIGURE (one ioctl, Linux 5.8 and later). Another process may
// take the device the kernel named free before it is configured: then
// the next free one is tried.
func attachLoop(backing string) (*loopDevice, error) {
	file, err := os.OpenFile(backing, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("drive: open %s: %w", backing, err)
	}
	// The device holds its own reference to the file once configured.
	defer file.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("drive: %w", err)
	}
	defer ctl.Close()
	for range 10 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("drive: find a free loop device: %w", err)
		}
		path := "/dev/loop" + strconv.Itoa(n)
		// In a container /dev may have nodes for the first few devices
		// only, while the kernel hands out more.
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(loopMajor, uint32(n)))); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("drive: make %s: %w", path, err)
			}
		}
		dev, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("drive: %w", err)
		}
		// Autoclear: the device lets go of the file when its last user
		// closes it. Once ext4 is mounted that is the mount, so this
		// process holds no descriptor of the device (release), and the
		// device is cleared by umount(8)'s close, with ext4's last
		// writes: never by this process's own exit, whose close would
		// wait for this process's FUSE server, which died first.
		cfg := unix.LoopConfig{Fd: uint32(file.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], backing)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) {
			dev.Close()
			continue
		}
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("drive: bind %s to %s: %w", path, backing, err)
		}
		return &loopDevice{path: path, n: n, backing: backing, f: dev}, nil
	}
	return nil, errors.New("drive: every free loop device was taken by another process first")
}

func (l *loopDevice) node() string { return l.path }

// release closes this process's descriptor of the device, once ext4 is
// mounted on it (see attachLoop).
func (l *loopDevice) release() {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// detach unbinds the device from its file (when this process still holds
// it; otherwise the device let go when ext4 was unmounted) and waits until
// the kernel has let go of the file, so that the FUSE mount under it can
// be unmounted.
func (l *loopDevice) detach() error {
	if l.f != nil {
		defer l.release()
		if err := unix.IoctlSetInt(int(l.f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("drive: unbind %s: %w", l.path, err)
		}
		l.release()
	}
	// The kernel clears the device when its last user closes it; another
	// process may bind it to a file of its own right after.
	backing := fmt.Sprintf("/sys/block/loop%d/loop/backing_file", l.n)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(backing); errors.Is(err, os.ErrNotExist) || err == nil && strings.TrimSpace(string(b)) != l.backing {
			return nil
		}
	}
	err := fmt.Errorf("drive: %s still holds its file 10s after being unbound", l.path)
	return withUsers(err, "", l.path, fmt.Sprintf("%d:%d", loopMajor, l.n))
}

// loopOf says which loop device holds the file at backing, "" for none:
// a drive left attached by a process that died is found again this way.
func loopOf(backing string) (string, error) {
	entries, err := os.ReadDir("/sys/block")
	if err != nil {
		return "", fmt.Errorf("drive: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile("/sys/block/" + e.Name() + "/loop/backing_file")
		if err == nil && strings.TrimSpace(string(b)) == backing {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", nil
}
