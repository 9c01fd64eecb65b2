package vmimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeDisk makes the raw ext4 disk: a root file system with busybox (its
// applets linked in /bin), the weft binary as /usr/bin/weft, and a minimal
// /etc. mkfs.ext4 -d fills it from a directory, without root or loop devices.
func writeDisk(ctx context.Context, path string, opts Options, busybox string) error {
	root, err := os.MkdirTemp(opts.WorkDir, ".rootfs-")
	if err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	defer os.RemoveAll(root)
	if err := populateRoot(ctx, root, opts, busybox); err != nil {
		return err
	}
	os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	err = f.Truncate(opts.DiskSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	// Initialise inode tables and journal now, on the host, rather than in
	// the guest's background (ext4lazyinit), which costs emulated CPU after boot.
	if _, err := run(ctx, "", "mkfs.ext4", "-q", "-F", "-d", root, "-L", "weftroot",
		"-E", "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0", path); err != nil {
		return fmt.Errorf("vmimage: make disk: %w", err)
	}
	return nil
}

// populateRoot fills root with the guest's file system.
func populateRoot(ctx context.Context, root string, opts Options, busybox string) error {
	dirs := []struct {
		name string
		perm os.FileMode
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"home", 0o755}, {"mnt", 0o755},
		{"proc", 0o555}, {"root", 0o700}, {"run", 0o755}, {"sys", 0o555}, {"tmp", 0o1777},
		{"usr", 0o755}, {"usr/bin", 0o755}, {"usr/local", 0o755}, {"usr/local/bin", 0o755},
		{"var", 0o755}, {"var/log", 0o755}, {"var/tmp", 0o1777}, {"var/lib", 0o755},
	}
	for _, d := range dirs {
		p := filepath.Join(root, d.name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("vmimage: %w", err)
		}
		if err := os.Chmod(p, d.perm); err != nil {
			return fmt.Errorf("vmimage: %w", err)
		}
	}
	if err := copyFile(busybox, filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	out, err := run(ctx, "", busybox, "--list")
	if err != nil {
		return fmt.Errorf("vmimage: list busybox applets: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return fmt.Errorf("vmimage: %w", err)
		}
	}
	// Merged /usr, all in /bin: /sbin and /usr/sbin find the same applets.
	if err := os.Symlink("bin", filepath.Join(root, "sbin")); err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	if err := os.Symlink("../bin", filepath.Join(root, "usr", "sbin")); err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	if err := copyFile(opts.WeftBinary, filepath.Join(root, "usr", "bin", "weft"), 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"etc/hostname":    opts.Hostname + "\n",
		"etc/hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t" + opts.Hostname + "\n",
		"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":       "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
		"etc/shadow":      "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"etc/resolv.conf": "nameserver 10.0.2.3\n", // QEMU user-mode networking's DNS
		"etc/fstab":       "/dev/vda / ext4 rw,relatime 0 1\n",
		"etc/os-release":  "NAME=\"Weft guest\"\nID=weft\nPRETTY_NAME=\"Weft guest (busybox)\"\n",
		"etc/profile":     "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
	}
	for name, content := range files {
		perm := os.FileMode(0o644)
		if name == "etc/shadow" {
			perm = 0o600
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), perm); err != nil {
			return fmt.Errorf("vmimage: %w", err)
		}
	}
	return nil
}
