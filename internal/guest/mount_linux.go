package guest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// sysBlock is where the kernel lists the guest's disks, each with its
// serial (virtio-blk's, QEMU's serial= property) in its serial file.
const sysBlock = "/sys/block"

// mountDisk is the guest's side of OpMount: the ext4 file system of the
// disk with the given serial, mounted at target (made if missing) with
// errors=remount-ro, so a disk the host can no longer write (fenced)
// turns read-only rather than losing writes silently.
func mountDisk(serial, target string) error {
	if serial == "" {
		return fmt.Errorf("mount: no disk serial")
	}
	if !path.IsAbs(target) || path.Clean(target) != target || target == "/" {
		return fmt.Errorf("mount: %q is not a clean absolute path below /", target)
	}
	dev, err := diskBySerial(serial)
	if err != nil {
		return err
	}
	if mountPoints()[target] {
		return nil // mounted by an earlier request (the host's agent restarted)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	if err := unix.Mount(dev, target, "ext4", unix.MS_NOATIME, "errors=remount-ro"); err != nil {
		return fmt.Errorf("mount: %s (serial %s) at %s: %w", dev, serial, target, err)
	}
	return nil
}

// diskBySerial finds the device of the disk with the given serial.
func diskBySerial(serial string) (string, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return "", fmt.Errorf("mount: %w", err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "serial"))
		if err == nil && strings.TrimSpace(string(data)) == serial {
			return "/dev/" + e.Name(), nil
		}
	}
	return "", fmt.Errorf("mount: the guest has no disk with serial %q", serial)
}
