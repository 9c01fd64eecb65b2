package drive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Device is the block device a drive's ext4 is made and mounted on.
type Device string

const (
	// DeviceAuto is DeviceNBD where the kernel's nbd driver is loaded or
	// loadable and one of its devices is free, DeviceFUSELoop otherwise.
	DeviceAuto Device = ""
	// DeviceNBD is a device of the kernel's nbd driver, served by this
	// process over a socket pair (nbdkernel.go).
	DeviceNBD Device = "nbd"
	// DeviceFUSELoop is a loop device bound to the disk served as the
	// one file of a FUSE mount (fuse.go, loop.go).
	DeviceFUSELoop Device = "fuse-loop"
)

// DeviceEnv, when set to "nbd" or "fuse-loop", is the device of drives
// attached with Options.Device unset: tests (and a node whose nbd driver
// misbehaves) force the FUSE and loop device path with
// WEFT_DRIVE_DEVICE=fuse-loop. The drive servers inherit it from the agent.
const DeviceEnv = "WEFT_DRIVE_DEVICE"

// hostRoots are where the kernel's devices are seen: "/sys" and "/dev",
// or folders laid out like them in tests.
type hostRoots struct{ sys, dev string }

var realHost = hostRoots{sys: "/sys", dev: "/dev"}

// choice is the device a drive is attached through, why, and for
// DeviceNBD the nbd devices that were free (their numbers, in order).
type choice struct {
	device Device
	why    string
	nbd    []int
}

// chooseDevice decides, in this one place, how a drive is attached: want
// (else $WEFT_DRIVE_DEVICE) when set, else the kernel's nbd driver when it
// has a free device (/sys/block/nbdN without a pid file, of size 0), else
// FUSE and a loop device. A /dev/nbd0 without /sys/block/nbd0 is opened
// first: the kernel loads the nbd module for it, where it can. Forcing
// DeviceNBD where no nbd device is free is an error.
func (h hostRoots) chooseDevice(want Device) (choice, error) {
	why := "asked for by the caller"
	if want == DeviceAuto {
		want, why = Device(os.Getenv(DeviceEnv)), "$"+DeviceEnv+" says so"
	}
	switch want {
	case DeviceFUSELoop:
		return choice{device: DeviceFUSELoop, why: why}, nil
	case DeviceNBD, DeviceAuto:
	default:
		return choice{}, fmt.Errorf("drive: unknown device %q (want %q or %q)", want, DeviceNBD, DeviceFUSELoop)
	}
	free, found, err := h.freeNBD()
	if err == nil && !found {
		if f, err := os.OpenFile(filepath.Join(h.dev, "nbd0"), os.O_RDWR, 0); err == nil {
			f.Close()
			free, found, err = h.freeNBD()
		}
	}
	switch {
	case err != nil && want == DeviceNBD:
		return choice{}, err
	case err != nil:
		return choice{device: DeviceFUSELoop, why: err.Error()}, nil
	case len(free) > 0 && want == DeviceNBD:
		return choice{device: DeviceNBD, why: why, nbd: free}, nil
	case len(free) > 0:
		return choice{device: DeviceNBD, why: "the kernel's nbd driver is loaded and has a free device", nbd: free}, nil
	case want == DeviceNBD && found:
		return choice{}, errors.New("drive: every nbd device of the kernel is in use")
	case want == DeviceNBD:
		return choice{}, errors.New("drive: the kernel's nbd driver is not loaded (no /sys/block/nbd0) and /dev/nbd0 did not load it")
	case found:
		return choice{device: DeviceFUSELoop, why: "every nbd device of the kernel is in use"}, nil
	default:
		return choice{device: DeviceFUSELoop, why: "the kernel's nbd driver is not loaded (no /sys/block/nbd0) and /dev/nbd0 did not load it"}, nil
	}
}

// freeNBD lists the nbd devices no client uses: no pid file (the process
// in NBD_DO_IT) and a size of 0. found says whether there is any nbd
// device at all.
func (h hostRoots) freeNBD() (free []int, found bool, err error) {
	entries, err := os.ReadDir(filepath.Join(h.sys, "block"))
	if err != nil {
		return nil, false, fmt.Errorf("drive: %w", err)
	}
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "nbd"))
		if !strings.HasPrefix(e.Name(), "nbd") || err != nil || n < 0 {
			continue
		}
		found = true
		dir := filepath.Join(h.sys, "block", e.Name())
		if pid, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil && len(strings.TrimSpace(string(pid))) > 0 {
			continue
		}
		if size, err := os.ReadFile(filepath.Join(dir, "size")); err != nil || strings.TrimSpace(string(size)) != "0" {
			continue
		}
		free = append(free, n)
	}
	slices.Sort(free)
	return free, found, nil
}
