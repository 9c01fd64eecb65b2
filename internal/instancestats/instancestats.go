// Package instancestats samples the figures of process and container
// instances for the built-in monitor extension: CPU and memory from the
// instance's cgroup (internal/cgroups), disk from its folder. A VM's
// figures come from its guest agent instead.
package instancestats

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/cgroups"
	"github.com/weftcloud/weft/internal/driver"
)

// Sampler reads instances' figures; it keeps each instance's previous CPU
// reading so that a sample's CPU figure covers the time since the last.
// Safe for concurrent use.
type Sampler struct {
	cgroups *cgroups.Set
	dirOf   func(id string) (string, error)
	mu      sync.Mutex
	last    map[string]cpuReading
}

type cpuReading struct {
	used time.Duration
	at   time.Time
}

// New returns a sampler of instances in set's cgroups (nil when the node
// has none: every sample fails with ErrNoCgroups), whose folders dirOf
// gives.
func New(set *cgroups.Set, dirOf func(id string) (string, error)) *Sampler {
	return &Sampler{cgroups: set, dirOf: dirOf, last: map[string]cpuReading{}}
}

// ErrNoCgroups is Figures' error on a node without usable cgroups.
var ErrNoCgroups = errors.New("the node has no usable cgroups to read an instance's figures from")

// Figures reads instance id's figures. CPUs is its CPU quota rounded up,
// or the node's CPUs when it has none, and CPUPercent is its CPU time
// since the previous sample against that quota (against the node's CPUs
// without one), 0 at the first sample. MemoryUsed is its cgroup's working
// set, MemoryTotal its limit or the node's memory. DiskUsed is the bytes
// of the files under dir (its folder, on that file system only: not what
// is mounted inside it), DiskTotal the size of that file system. Load1
// is always 0: a cgroup has no load average.
func (s *Sampler) Figures(id string) (driver.GuestFigures, error) {
	if s.cgroups == nil {
		return driver.GuestFigures{}, ErrNoCgroups
	}
	dir, err := s.dirOf(id)
	if err != nil {
		return driver.GuestFigures{}, err
	}
	u, err := s.cgroups.Usage(id)
	if err != nil {
		return driver.GuestFigures{}, fmt.Errorf("figures of %s: %w", id, err)
	}
	now := time.Now().UTC()
	f := driver.GuestFigures{SampledAt: now, MemoryUsed: u.Memory, MemoryTotal: u.MemoryLimit}
	cpus := u.CPULimit
	if cpus == 0 {
		cpus = float64(runtime.NumCPU())
	}
	f.CPUs = int(math.Ceil(cpus))
	if f.MemoryTotal == 0 {
		var si unix.Sysinfo_t
		if unix.Sysinfo(&si) == nil {
			f.MemoryTotal = int64(si.Totalram) * int64(si.Unit)
		}
	}
	s.mu.Lock()
	prev, ok := s.last[id]
	s.last[id] = cpuReading{used: u.CPU, at: now}
	s.mu.Unlock()
	if wall := now.Sub(prev.at); ok && wall > 0 && u.CPU >= prev.used {
		f.CPUPercent = min(100*float64(u.CPU-prev.used)/(float64(wall)*cpus), 100)
	}
	if f.DiskUsed, f.DiskTotal, err = diskFigures(dir); err != nil {
		return driver.GuestFigures{}, fmt.Errorf("figures of %s: %w", id, err)
	}
	return f, nil
}

// Forget drops what the sampler keeps of instance id (it was removed).
func (s *Sampler) Forget(id string) {
	s.mu.Lock()
	delete(s.last, id)
	s.mu.Unlock()
}

// diskFigures is the bytes allocated to the files under dir, not
// crossing into other file systems, and the size of dir's file system.
func diskFigures(dir string) (used, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	total = int64(st.Blocks) * st.Bsize
	root, err := os.Lstat(dir)
	if err != nil {
		return 0, 0, err
	}
	dev := root.Sys().(*syscall.Stat_t).Dev
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			// A file removed while we walk, or a folder we may not read.
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		sys := info.Sys().(*syscall.Stat_t)
		if sys.Dev != dev {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		used += sys.Blocks * 512
		return nil
	})
	return used, total, err
}
