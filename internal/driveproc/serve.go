// Package driveproc runs each drive of a process or container instance in
// a process of its own, `weft drive-serve DIR`, so that the drive outlives
// the agent that attached it: the server behind a drive's block device
// (internal/drive: the FUSE server behind its loop device, or the NBD
// server the kernel's nbd device talks to over a socket pair, with the
// thread sitting in NBD_DO_IT) dies with the process it runs in, and with
// it the ext4 mount the instance writes to. The agent starts one per drive (Start),
// finds it again after its own restart (Adopt) and stops it once the
// instance has stopped (Proc.Stop).
//
// The agent takes the drive's lease before starting the process and hands
// it the lease's ID; the lease is infinite, so nothing renews it, and it
// ends only when a node that takes the drive over breaks it (that node's
// copy of the instance is then the one that writes: this one's writes fail
// with EIO). A drive server lives in DIR (the drive's folder on the node):
//
//	DIR/spec.json    what to serve, written by the agent (it holds the SAS: 0600)
//	DIR/serving.json the server's PID, start time, blob and lease, written once the drive is mounted
//	DIR/serve.log    the server's log
//	DIR/refused      why the last SIGTERM did not unmount the drive
//	DIR/work, DIR/mnt the FUSE file (or the nbd device's record) and the ext4 mount (drive.Options)
package driveproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/procstat"
	"github.com/weftcloud/weft/internal/vmdisk"
)

// Files in a drive server's folder.
const (
	specFile    = "spec.json"
	servingFile = "serving.json"
	refusedFile = "refused"
	LogFile     = "serve.log"
)

// Spec is what a drive server serves.
type Spec struct {
	Access api.DiskAccess `json:"access"`
	// Lease is the ID of the lease the agent holds on the drive's blob:
	// every write carries it.
	Lease string `json:"lease"`
	// Cache is the read cache's size in bytes (drive.DefaultCache if 0).
	Cache int64 `json:"cache,omitempty"`
}

// serving is what a drive server records once its drive is mounted: who
// it is (the start time tells a reused PID apart) and what it serves.
type serving struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	Blob  string `json:"blob"`
	Lease string `json:"lease"`
	Mount string `json:"mount"`
	// Device is the block device the drive is attached through
	// (drive.DeviceNBD or drive.DeviceFUSELoop), for people reading it.
	Device drive.Device `json:"device,omitempty"`
}

// options are where the drive of the server in dir is mounted.
func options(dir string) drive.Options {
	return drive.Options{Work: filepath.Join(dir, "work"), Mount: filepath.Join(dir, "mnt")}
}

// MountOf is where the drive of the server in dir is mounted.
func MountOf(dir string) string { return options(dir).Mount }

// Main is `weft drive-serve DIR`: it mounts the drive DIR/spec.json names
// and serves it until SIGTERM, then unmounts it and exits 0. A drive that
// cannot be unmounted (a process still holds a file on it) is served on
// and tried again every few seconds. Its log goes to stderr, which the
// agent points at DIR/serve.log.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: weft drive-serve DIR")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := serve(args[0], log); err != nil {
		log.Error("drive server: " + err.Error())
		return 1
	}
	return 0
}

func serve(dir string, log *slog.Logger) error {
	var spec Spec
	if err := atomicfile.ReadJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return err
	}
	// Before mounting: a SIGTERM while the drive is being attached waits
	// for the mount, then detaches it.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	blobs, err := vmdisk.Client(spec.Access)
	if err != nil {
		return err
	}
	disk := vmdisk.Open(blobs, spec.Access.Container, spec.Access.Blob, spec.Access.Size, spec.Lease)
	opt := options(dir)
	opt.Cache, opt.Log = spec.Cache, log.With("drive", spec.Access.Name)
	d, err := drive.Attach(context.Background(), disk, opt)
	if err != nil {
		return err
	}
	_, start, err := procstat.Stat(os.Getpid())
	if err == nil {
		err = atomicfile.WriteJSON(filepath.Join(dir, servingFile), serving{
			PID: os.Getpid(), Start: start, Blob: spec.Access.Blob, Lease: spec.Lease, Mount: opt.Mount, Device: d.Device(),
		})
	}
	if err != nil {
		return errors.Join(err, d.Detach())
	}
	log.Info("drive mounted", "drive", spec.Access.Name, "mount", opt.Mount, "device", d.Device())
	<-stop
	// Asked to stop, it stops as soon as it can: a drive in use (a
	// process of the instance lingering, or ext4's last writes waiting for
	// a storage service cut off from this node) is tried again until it
	// is free, or at once on another SIGTERM.
	retry := time.NewTicker(retryDetach)
	defer retry.Stop()
	for {
		err := d.Detach()
		if err == nil {
			break
		}
		log.Error("drive not detached; still serving it", "err", err)
		os.WriteFile(filepath.Join(dir, refusedFile), []byte(err.Error()), 0o600)
		select {
		case <-stop:
		case <-retry.C:
		}
	}
	log.Info("drive detached", "drive", spec.Access.Name)
	// Its folder goes with it, unless the agent that asked has taken it
	// down already (Proc.Stop) or something else was left in it.
	for _, f := range []string{servingFile, specFile, refusedFile} {
		os.Remove(filepath.Join(dir, f))
	}
	for _, d := range []string{filepath.Join(opt.Work, "blob"), opt.Work, opt.Mount} {
		os.Remove(d)
	}
	return nil
}

// retryDetach is how often a server asked to stop tries again to detach
// a drive that was in use.
const retryDetach = 5 * time.Second
