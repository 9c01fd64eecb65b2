package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is what an instance's cgroup says it uses and may use.
type Usage struct {
	// CPU is the CPU time its processes have used since the cgroup was
	// made (all CPUs together).
	CPU time.Duration
	// CPULimit is its CPU quota in CPUs (0.25 is a quarter of one); 0
	// when it has none.
	CPULimit float64
	// Memory is its working set: the memory charged to it less the file
	// cache it could give back at once (inactive files), as the kernel's
	// out-of-memory killer counts it.
	Memory int64
	// MemoryLimit is its memory limit in bytes; 0 when it has none.
	MemoryLimit int64
}

// Usage reads instance id's cgroup: any cgroup at PARENT/ID, also one
// made by another manager such as runc. It fails when the cgroup is gone.
func (c *Set) Usage(id string) (Usage, error) {
	if c.v2 != "" {
		return usageV2(filepath.Join(c.v2, id))
	}
	if c.cpuacct == "" {
		return Usage{}, errors.New("cgroup: the host has no cpuacct controller")
	}
	return usageV1(filepath.Join(c.memory, id), filepath.Join(c.cpu, id), filepath.Join(c.cpuacct, id))
}

func usageV2(dir string) (Usage, error) {
	var u Usage
	stat, err := readFile(dir, "cpu.stat")
	if err != nil {
		return u, err
	}
	u.CPU = time.Duration(fieldValue(stat, "usage_usec")) * time.Microsecond
	if u.Memory, err = readInt(dir, "memory.current"); err != nil {
		return u, err
	}
	if mstat, err := readFile(dir, "memory.stat"); err == nil {
		u.Memory = max(u.Memory-int64(fieldValue(mstat, "inactive_file")), 0)
	}
	if lim, err := readFile(dir, "memory.max"); err == nil && strings.TrimSpace(lim) != "max" {
		u.MemoryLimit, _ = strconv.ParseInt(strings.TrimSpace(lim), 10, 64)
	}
	if f, err := readFile(dir, "cpu.max"); err == nil {
		if q := strings.Fields(f); len(q) == 2 && q[0] != "max" {
			quota, _ := strconv.ParseFloat(q[0], 64)
			period, _ := strconv.ParseFloat(q[1], 64)
			if period > 0 {
				u.CPULimit = quota / period
			}
		}
	}
	return u, nil
}

// v1's memory.limit_in_bytes without a limit is the largest page-aligned
// int64; anything this large means none.
const v1NoLimit = 1 << 62

func usageV1(mem, cpu, cpuacct string) (Usage, error) {
	var u Usage
	ns, err := readInt(cpuacct, "cpuacct.usage")
	if err != nil {
		return u, err
	}
	u.CPU = time.Duration(ns)
	if u.Memory, err = readInt(mem, "memory.usage_in_bytes"); err != nil {
		return u, err
	}
	if mstat, err := readFile(mem, "memory.stat"); err == nil {
		u.Memory = max(u.Memory-int64(fieldValue(mstat, "total_inactive_file")), 0)
	}
	if l, err := readInt(mem, "memory.limit_in_bytes"); err == nil && l < v1NoLimit {
		u.MemoryLimit = l
	}
	quota, qerr := readInt(cpu, "cpu.cfs_quota_us")
	period, perr := readInt(cpu, "cpu.cfs_period_us")
	if qerr == nil && perr == nil && quota > 0 && period > 0 {
		u.CPULimit = float64(quota) / float64(period)
	}
	return u, nil
}

func readFile(dir, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("cgroup: %w", err)
	}
	return string(data), nil
}

func readInt(dir, name string) (int64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup: %s: %w", filepath.Join(dir, name), err)
	}
	return n, nil
}
