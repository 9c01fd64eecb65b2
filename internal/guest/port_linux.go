package guest

import (
	"os"
	"path/filepath"
	"strings"
)

// resolvePort finds the device of a virtio-serial port. Without udev there
// are no /dev/virtio-ports/NAME links: the kernel names the device
// /dev/vportNpM and says the port's name in /sys/class/virtio-ports/vportNpM/name.
// It returns path itself when it exists or names no virtio port.
func resolvePort(path string) string {
	if _, err := os.Stat(path); err == nil {
		return path
	}
	dir, name := filepath.Split(path)
	if filepath.Clean(dir) != "/dev/virtio-ports" {
		return path
	}
	ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, p := range ports {
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		dev := "/dev/" + filepath.Base(filepath.Dir(p))
		// Make the link udev would have, for people looking for it.
		if os.MkdirAll("/dev/virtio-ports", 0o755) == nil {
			os.Symlink("../"+filepath.Base(dev), path)
		}
		return dev
	}
	return path
}
