package guest

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestStats asks the agent for this machine's figures twice: the second
// answer covers only the time since the first.
func TestStats(t *testing.T) {
	c := serve(t, New(newFakeMachine().options(io.Discard)), false)
	ctx := ctxTimeout(t, 10*time.Second)
	first, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.CPUs != runtime.NumCPU() || first.MemTotal == 0 || first.MemAvailable > first.MemTotal ||
		first.DiskTotal == 0 || first.DiskFree > first.DiskTotal || first.CPUTotal == 0 || first.CPUBusy > first.CPUTotal {
		t.Fatalf("figures: %+v", first)
	}
	time.Sleep(50 * time.Millisecond)
	second, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.CPUTotal == 0 || second.CPUTotal >= first.CPUTotal || second.CPUBusy > second.CPUTotal {
		t.Errorf("the second sample covers %d jiffies (busy %d), the first %d: want fewer, since the first", second.CPUTotal, second.CPUBusy, first.CPUTotal)
	}
}

func TestReadCPUAndMeminfo(t *testing.T) {
	dir := t.TempDir()
	stat := filepath.Join(dir, "stat")
	os.WriteFile(stat, []byte("cpu  100 5 50 800 20 3 2 1 7 0\ncpu0 1 2 3 4\n"), 0o644)
	busy, total, err := readCPU(stat)
	if err != nil || total != 981 || busy != 161 {
		t.Errorf("readCPU: busy %d total %d, %v; want 161 of 981", busy, total, err)
	}
	os.WriteFile(stat, []byte("intr 1 2\n"), 0o644)
	if _, _, err := readCPU(stat); err == nil {
		t.Error("a file without the cpu line read")
	}
	mem := filepath.Join(dir, "meminfo")
	os.WriteFile(mem, []byte("MemTotal:         251456 kB\nMemAvailable:     200000 kB\nHugePages_Total:       0\n"), 0o644)
	m, err := readMeminfo(mem)
	if err != nil || m["MemTotal"] != 251456*1024 || m["MemAvailable"] != 200000*1024 || m["HugePages_Total"] != 0 {
		t.Errorf("readMeminfo: %v, %v", m, err)
	}
}
