package drive

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxUsers bounds how many users of a drive an error names.
const maxUsers = 5

// users says which processes keep a drive's mount or device in use, for
// the error of a drive that cannot be detached: those with a file, working
// directory or root at or under path (a mount point), or with node (a
// device file) open, and those in another mount namespace (one made while
// the drive was mounted) that still mount dev, the device's
// "major:minor". It returns "" when it finds none.
func users(path, node, dev string) string {
	self, _ := os.Readlink("/proc/self/ns/mnt")
	entries, _ := os.ReadDir("/proc")
	seenNS := map[string]bool{self: true}
	var found []string
	for _, e := range entries {
		if len(found) >= maxUsers {
			break
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		name := fmt.Sprintf("pid %d (%s)", pid, comm(dir))
		links := []string{"cwd", "root"}
		if fds, err := os.ReadDir(filepath.Join(dir, "fd")); err == nil {
			for _, fd := range fds {
				links = append(links, filepath.Join("fd", fd.Name()))
			}
		}
		for _, l := range links {
			target, err := os.Readlink(filepath.Join(dir, l))
			if err == nil && (target == node || under(target, path)) {
				found = append(found, fmt.Sprintf("%s has %s open", name, target))
				break
			}
		}
		ns, err := os.Readlink(filepath.Join(dir, "ns", "mnt"))
		if dev == "" || err != nil || seenNS[ns] {
			continue
		}
		seenNS[ns] = true
		if at := mountOf(filepath.Join(dir, "mountinfo"), dev); at != "" {
			found = append(found, fmt.Sprintf("%s mounts it at %s in a mount namespace of its own", name, at))
		}
	}
	return strings.Join(found, "; ")
}

// under says whether target is path or lies beneath it.
func under(target, path string) bool {
	return path != "" && (target == path || strings.HasPrefix(target, path+"/"))
}

func comm(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "comm"))
	return strings.TrimSpace(string(b))
}

// mountOf returns where the mountinfo file at path mounts dev, "" if
// nowhere.
func mountOf(path, dev string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[2] == dev {
			return f[4]
		}
	}
	return ""
}

// deviceOf returns the "major:minor" of the file system mounted at path,
// "" when it cannot be read.
func deviceOf(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// withUsers adds the users found (see users) to err.
func withUsers(err error, path, node, dev string) error {
	if u := users(path, node, dev); u != "" {
		return fmt.Errorf("%w (in use: %s)", err, u)
	}
	return err
}
