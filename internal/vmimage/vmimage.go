// Package vmimage builds a small bootable Linux VM image for Weft's vm
// runtime from Debian packages: an uncompressed kernel (vmlinux, booted
// directly by QEMU), an initrd that loads the virtio and ext4 modules and
// mounts the root disk, and a raw ext4 disk holding busybox and a static
// weft binary that runs as init (`weft guest --init`).
//
// It needs apt-get, apt-cache and dpkg-deb (Debian's kernel and
// busybox-static packages) and mkfs.ext4 from e2fsprogs; it needs neither
// root nor loop devices. Downloaded packages, what is extracted from the
// kernel package and apt's package cache are kept in Options.CacheDir.
package vmimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// DefaultDiskSize is the disk size when Options.DiskSize is 0.
const DefaultDiskSize = 256 << 20

// DefaultCmdline is the kernel command line of built images, for QEMU's
// microvm machine (which appends its own settings). It leaves out
// tsc_early_khz, which depends on the host: QEMUCommand adds it.
//
// Each setting saves emulated time (measured under TCG, where the guest
// agent is ready about 1.8 s after QEMU starts): quiet keeps the slow
// emulated UART out of the boot path; mitigations=off, init_on_alloc=0 and
// noreplace-smp skip work that costs much more emulated than on hardware;
// lsm=capability skips AppArmor, IMA and EVM set-up; the i8042 and 8250
// settings skip probing devices microvm does not have. panic=-1 turns a
// panic into a reboot, which QEMU with -no-reboot turns into an exit.
const DefaultCmdline = "console=ttyS0 root=/dev/vda rw quiet panic=-1 reboot=t " +
	"i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=1 " +
	"mitigations=off init_on_alloc=0 noreplace-smp lsm=capability " +
	"random.trust_cpu=on cryptomgr.notests audit=0 nowatchdog"

// Options say what to build and where.
type Options struct {
	// WorkDir receives the results and scratch files; created if missing.
	WorkDir string
	// CacheDir keeps downloaded .debs, the kernel files extracted from
	// them and apt's package cache (about 40 MB) between builds (default:
	// os.UserCacheDir()/weft/debs).
	CacheDir string
	// WeftBinary is the statically linked weft binary to install as
	// /usr/bin/weft; Build refuses a dynamically linked one.
	WeftBinary string
	// DiskSize is the size of the raw disk in bytes (default DefaultDiskSize).
	DiskSize int64
	// GzipInitrd compresses the initrd. Uncompressed boots a little faster
	// under TCG (no inflating in the guest) at the cost of a larger file.
	GzipInitrd bool
	// Hostname goes into the disk's /etc/hostname (default "weft").
	Hostname string
	// Log receives the build's log records, for an operator's log
	// (default: discard).
	Log *slog.Logger
	// Progress receives one line per step, for people watching the build
	// (default: none).
	Progress io.Writer
}

// Result says what Build made. The paths are files in Options.WorkDir.
type Result struct {
	Kernel   string // the uncompressed vmlinux ELF
	Initrd   string // newc cpio, gzip-compressed when Options.GzipInitrd
	Disk     string // raw ext4 image
	Cmdline  string // kernel command line to boot it with
	DiskSize int64

	KernelVersion string   // e.g. "6.1.0-48-amd64"
	Packages      []string // the .deb files it was built from
}

// ErrDynamicBinary is returned when Options.WeftBinary needs an ELF
// interpreter (a dynamic loader), which the image does not have.
var ErrDynamicBinary = errors.New("vmimage: weft binary is dynamically linked")

// Build builds the image. It fails when a tool it needs is missing, a
// package cannot be downloaded (and is not cached), or the weft binary is
// not a static x86-64 executable (ErrDynamicBinary).
func Build(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	r := reporter{log: opts.Log, out: opts.Progress}
	log := opts.Log
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("vmimage: building x86-64 images needs an amd64 host with amd64 packages, not %s", runtime.GOARCH)
	}
	if err := checkStatic(opts.WeftBinary); err != nil {
		return nil, err
	}
	if err := requireTools("dpkg-deb", "mkfs.ext4"); err != nil {
		return nil, err
	}
	for _, d := range []string{opts.WorkDir, opts.CacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("vmimage: %w", err)
		}
	}
	start := time.Now()

	kernelDeb, err := fetchKernelDeb(ctx, opts.CacheDir, r)
	if err != nil {
		return nil, err
	}
	busyboxDeb, err := fetchDeb(ctx, opts.CacheDir, "busybox-static", r)
	if err != nil {
		return nil, err
	}
	kern, err := kernelFiles(ctx, kernelDeb, opts.CacheDir, opts.WorkDir, r)
	if err != nil {
		return nil, err
	}
	busybox, err := extractBusybox(ctx, busyboxDeb, opts.WorkDir)
	if err != nil {
		return nil, err
	}

	res := &Result{
		Kernel:        filepath.Join(opts.WorkDir, "vmlinux"),
		Disk:          filepath.Join(opts.WorkDir, "disk.raw"),
		Cmdline:       DefaultCmdline,
		DiskSize:      opts.DiskSize,
		KernelVersion: kern.version,
		Packages:      []string{kernelDeb, busyboxDeb},
	}
	if err := copyFile(kern.vmlinux, res.Kernel, 0o644); err != nil {
		return nil, err
	}
	res.Initrd = filepath.Join(opts.WorkDir, "initrd.cpio")
	if opts.GzipInitrd {
		res.Initrd += ".gz"
	}
	log.Info("writing initrd", "path", res.Initrd, "modules", len(kern.modules))
	r.say("writing the initrd (busybox, the weft guest agent and %d kernel modules)", len(kern.modules))
	if err := writeInitrd(res.Initrd, busybox, kern.modules, opts.GzipInitrd); err != nil {
		return nil, err
	}
	log.Info("writing disk", "path", res.Disk, "size", opts.DiskSize)
	r.say("writing the %d MiB disk", opts.DiskSize>>20)
	if err := writeDisk(ctx, res.Disk, opts, busybox); err != nil {
		return nil, err
	}
	os.Remove(busybox)
	took := time.Since(start).Round(time.Millisecond)
	log.Info("image built", "kernel", kern.version, "took", took)
	r.say("built in %s (kernel %s)", took, kern.version)
	return res, nil
}

// reporter tells what a build does: records for the log, and a line per
// step for people.
type reporter struct {
	log *slog.Logger
	out io.Writer // nil: no lines
}

func (r reporter) say(format string, args ...any) {
	if r.out != nil {
		fmt.Fprintf(r.out, format+"\n", args...)
	}
}

func (o *Options) defaults() error {
	if o.WorkDir == "" {
		return errors.New("vmimage: no work directory")
	}
	if o.WeftBinary == "" {
		return errors.New("vmimage: no weft binary")
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("vmimage: no cache directory: %w", err)
		}
		o.CacheDir = filepath.Join(dir, "weft", "debs")
	}
	if o.DiskSize == 0 {
		o.DiskSize = DefaultDiskSize
	}
	if o.DiskSize < 16<<20 {
		return fmt.Errorf("vmimage: disk size %d is below 16 MiB", o.DiskSize)
	}
	if o.Hostname == "" {
		o.Hostname = "weft"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}
