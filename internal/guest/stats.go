package guest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// cpuCounter remembers the last /proc/stat reading, so each stats answer
// covers the time since the one before.
type cpuCounter struct {
	mu          sync.Mutex
	busy, total uint64
}

// stats reads the guest's figures. A figure it cannot read stays zero.
func (a *Agent) stats() *Stats {
	st := &Stats{CPUs: runtime.NumCPU(), Load: loadavg()}
	if busy, total, err := readCPU("/proc/stat"); err == nil {
		a.cpu.mu.Lock()
		if total >= a.cpu.total && busy >= a.cpu.busy {
			st.CPUBusy, st.CPUTotal = busy-a.cpu.busy, total-a.cpu.total
		}
		a.cpu.busy, a.cpu.total = busy, total
		a.cpu.mu.Unlock()
	}
	if mem, err := readMeminfo("/proc/meminfo"); err == nil {
		st.MemTotal, st.MemAvailable = mem["MemTotal"], mem["MemAvailable"]
	}
	st.DiskTotal, st.DiskFree = diskSpace("/")
	return st
}

// readCPU sums the first line of /proc/stat: every jiffy, and those not
// idle or waiting for I/O.
func readCPU(path string) (busy, total uint64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("guest: %s: no cpu line", path)
	}
	var idle uint64
	// user nice system idle iowait irq softirq steal (guest and
	// guest_nice are already in user and nice)
	for i, s := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("guest: %s: %w", path, err)
		}
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return total - idle, total, nil
}

// readMeminfo reads /proc/meminfo's figures, in bytes.
func readMeminfo(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[name] = n
	}
	return out, sc.Err()
}

// Stats asks the guest for its figures.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	m, err := c.call(ctx, request{Op: OpStats})
	if err != nil {
		return Stats{}, err
	}
	if m.Stats == nil {
		return Stats{}, &Error{Op: OpStats, Message: "the guest sent no figures (an older guest agent)"}
	}
	return *m.Stats, nil
}
