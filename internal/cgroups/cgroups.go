// Package cgroups gives each instance its own cgroup with memory and CPU
// limits, and reads what it uses: on a unified (v2) hierarchy with the
// memory and cpu controllers, or on the v1 memory, cpu and cpuacct
// hierarchies (hybrid hosts keep those on v1).
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnavailable means the host has no usable cgroup hierarchy.
var ErrUnavailable = errors.New("no usable cgroup hierarchy")

// Set is the parent cgroup of a node's instances; each instance's cgroup
// is PARENT/ID in every hierarchy used.
type Set struct {
	v2     string // the v2 parent directory, or ""
	memory string // v1 parent directories
	cpu    string
	// cpuacct is the v1 cpuacct parent: cpu's when the two controllers
	// share a hierarchy, "" when the host has no cpuacct.
	cpuacct string
}

const cgroupRoot = "/sys/fs/cgroup"

// Detect finds the hierarchies to use and creates parent in them.
func Detect(parent string) (*Set, error) {
	if ctrl, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		have := strings.Fields(string(ctrl))
		if hasAll(have, "memory", "cpu") {
			dir := filepath.Join(cgroupRoot, parent)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("cgroup v2: %w", err)
			}
			// Children can only use controllers their parent delegates.
			os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+memory +cpu"), 0o644)
			if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +cpu"), 0o644); err != nil {
				return nil, fmt.Errorf("cgroup v2: enable memory and cpu under %s: %w", dir, err)
			}
			return &Set{v2: dir}, nil
		}
		return nil, fmt.Errorf("cgroup v2 without the memory and cpu controllers (have %v)", have)
	}
	mem, cpu := filepath.Join(cgroupRoot, "memory"), filepath.Join(cgroupRoot, "cpu")
	if _, err := os.Stat(filepath.Join(mem, "memory.limit_in_bytes")); err != nil {
		return nil, ErrUnavailable
	}
	if _, err := os.Stat(filepath.Join(cpu, "cpu.cfs_quota_us")); err != nil {
		return nil, ErrUnavailable
	}
	c := &Set{memory: filepath.Join(mem, parent), cpu: filepath.Join(cpu, parent)}
	if _, err := os.Stat(filepath.Join(cpu, "cpuacct.usage")); err == nil {
		c.cpuacct = c.cpu
	} else if _, err := os.Stat(filepath.Join(cgroupRoot, "cpuacct", "cpuacct.usage")); err == nil {
		c.cpuacct = filepath.Join(cgroupRoot, "cpuacct", parent)
	}
	for _, d := range c.v1Dirs("") {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup v1: %w", err)
		}
	}
	return c, nil
}

func hasAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// Create makes the instance's cgroups with its limits and returns the files
// a process writes its PID to in order to join them.
func (c *Set) Create(id string, cpu float64, memory int64) ([]string, error) {
	const period = 100000 // µs
	if c.v2 != "" {
		dir := filepath.Join(c.v2, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		if memory > 0 {
			if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(strconv.FormatInt(memory, 10)), 0o644); err != nil {
				return nil, fmt.Errorf("cgroup: memory.max: %w", err)
			}
			os.WriteFile(filepath.Join(dir, "memory.swap.max"), []byte("0"), 0o644)
		}
		if cpu > 0 {
			quota := fmt.Sprintf("%d %d", int64(cpu*period), period)
			if err := os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(quota), 0o644); err != nil {
				return nil, fmt.Errorf("cgroup: cpu.max: %w", err)
			}
		}
		return []string{filepath.Join(dir, "cgroup.procs")}, nil
	}
	mem, cpuDir := filepath.Join(c.memory, id), filepath.Join(c.cpu, id)
	dirs := c.v1Dirs(id)
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
	}
	if memory > 0 {
		if err := os.WriteFile(filepath.Join(mem, "memory.limit_in_bytes"), []byte(strconv.FormatInt(memory, 10)), 0o644); err != nil {
			return nil, fmt.Errorf("cgroup: memory.limit_in_bytes: %w", err)
		}
		// Without this, swap would let the instance exceed its limit.
		os.WriteFile(filepath.Join(mem, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(memory, 10)), 0o644)
	}
	if cpu > 0 {
		os.WriteFile(filepath.Join(cpuDir, "cpu.cfs_period_us"), []byte(strconv.Itoa(period)), 0o644)
		if err := os.WriteFile(filepath.Join(cpuDir, "cpu.cfs_quota_us"), []byte(strconv.FormatInt(int64(cpu*period), 10)), 0o644); err != nil {
			return nil, fmt.Errorf("cgroup: cpu.cfs_quota_us: %w", err)
		}
	}
	procs := make([]string, len(dirs))
	for i, d := range dirs {
		procs[i] = filepath.Join(d, "cgroup.procs")
	}
	return procs, nil
}

// v1Dirs are the v1 cgroup directories of instance id (of the parent
// when id is ""), one per hierarchy used.
func (c *Set) v1Dirs(id string) []string {
	dirs := []string{filepath.Join(c.memory, id), filepath.Join(c.cpu, id)}
	if c.cpuacct != "" && c.cpuacct != c.cpu {
		dirs = append(dirs, filepath.Join(c.cpuacct, id))
	}
	return dirs
}

// OOMKilled reports whether the kernel killed a process of the instance for
// exceeding its memory limit. It works for any cgroup at PARENT/ID, also
// one made by another manager such as runc, until that cgroup is removed.
func (c *Set) OOMKilled(id string) bool {
	if c.v2 != "" {
		data, err := os.ReadFile(filepath.Join(c.v2, id, "memory.events"))
		return err == nil && fieldValue(string(data), "oom_kill") > 0
	}
	data, err := os.ReadFile(filepath.Join(c.memory, id, "memory.oom_control"))
	if err == nil && fieldValue(string(data), "oom_kill") > 0 {
		return true
	}
	data, err = os.ReadFile(filepath.Join(c.memory, id, "memory.failcnt"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return err == nil && n > 0
}

func fieldValue(text, key string) int {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// Remove deletes the instance's (empty) cgroups.
func (c *Set) Remove(id string) error {
	dirs := []string{filepath.Join(c.v2, id)}
	if c.v2 == "" {
		dirs = c.v1Dirs(id)
	}
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("cgroup: remove %s: %w", d, err)
		}
	}
	return nil
}
