package drive

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// A mount namespace made while a drive is attached (a process instance's
// on a virtual network, see internal/shim; `ip netns exec`; a container
// runtime's) starts with a copy of every mount, the drive's among them.
// Where the host's mounts are private (in containers; systemd makes them
// shared), the host's unmount never reached that copy: ext4 stayed mounted
// there, the loop device bound and the FUSE file open until the process
// ended, and the drive could not be detached ("in use: pid N (hello)
// mounts it ... in a mount namespace of its own", seen in make test). An
// unmount reaches the copies of a mount whose parent is shared, so each of
// a drive's mount points is first made a shared mount of its own (bound
// onto itself), and the drive's file systems are mounted on that.

// sharedMountPoint binds dir onto itself and makes the bind shared.
func sharedMountPoint(dir string) error {
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("drive: bind %s onto itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		unbind(dir)
		return fmt.Errorf("drive: make %s a shared mount: %w", dir, err)
	}
	return nil
}

// unbind takes away the bind sharedMountPoint made at dir, once the file
// system on it is unmounted. Lazily: it holds no file system of its own,
// and copies of it in other namespaces stay (a bind of an empty folder).
func unbind(dir string) { unix.Unmount(dir, unix.MNT_DETACH) }
