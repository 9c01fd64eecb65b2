package vmimage

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// initScript is the initrd's /init: load the modules, mount the root disk,
// and hand over to the disk's init. It fails by powering off, so that QEMU
// exits instead of hanging or rebooting in a loop.
const initScript = `#!/bin/sh
# weft initrd: load the virtio and ext4 modules, mount the root disk, switch to it.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1 </dev/console
log() { echo "weft-init: $*"; }
fail() { log "FAILED: $*"; sleep 1; poweroff -f; }
root=/dev/vda
rootfstype=ext4
init=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	root=*) root=${arg#root=} ;;
	rootfstype=*) rootfstype=${arg#rootfstype=} ;;
	init=*) init=${arg#init=} ;;
	weft.debug) set -x ;;
	esac
done
log "loading modules"
for m in /lib/modules/*.ko; do
	insmod "$m" || log "insmod $m failed"
done
i=0
while [ ! -b "$root" ]; do
	i=$((i + 1))
	[ $i -gt 1000 ] && fail "no $root after 10 s"
	sleep 0.01
done
log "mounting $root"
mount -t "$rootfstype" -o rw "$root" /newroot || fail "mount $root"
if [ -z "$init" ]; then
	if [ -x /newroot/usr/bin/weft ]; then
		init="/usr/bin/weft guest --init"
	else
		init=/sbin/init
	fi
fi
for d in dev proc sys; do
	mkdir -p /newroot/$d
	mount --move /$d /newroot/$d
done
log "starting $init"
exec switch_root /newroot $init
fail "switch_root"
`

// initrdApplets are the busybox applets /init uses.
var initrdApplets = []string{"sh", "mount", "insmod", "sleep", "mkdir", "cat", "echo", "poweroff", "switch_root", "["}

// writeInitrd writes the initrd: busybox, the modules in load order (their
// names prefixed with their position, so /init's glob keeps the order), and
// /init.
func writeInitrd(path, busybox string, modules []string, compress bool) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	var zw *gzip.Writer
	if compress {
		zw, _ = gzip.NewWriterLevel(bw, gzip.BestCompression)
		w = zw
	}
	c := newCPIOWriter(w)
	for _, d := range []string{"bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"} {
		c.Dir(d, 0o755)
	}
	c.CharDev("dev/console", 0o600, 5, 1)
	c.CharDev("dev/null", 0o666, 1, 3)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	c.File("bin/busybox", 0o755, bb)
	for _, a := range initrdApplets {
		c.Symlink("bin/"+a, "busybox")
	}
	for i, m := range modules {
		b, err := os.ReadFile(m)
		if err != nil {
			return fmt.Errorf("vmimage: %w", err)
		}
		c.File(fmt.Sprintf("lib/modules/%02d-%s", i, filepath.Base(m)), 0o644, b)
	}
	c.File("init", 0o755, []byte(initScript))
	err = c.Close()
	if zw != nil && err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return fmt.Errorf("vmimage: write initrd: %w", err)
	}
	return nil
}
