package agent

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/process"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/metrics/metricstest"
)

// TestMonitorFiguresAreMetrics: the figures in an instance's monitor
// status are the agent's weft_guest_* metrics, labelled with the
// instance; an instance without them has none. On a node without
// cgroups to read a process instance's figures from, monitor fails
// saying so.
func TestMonitorFiguresAreMetrics(t *testing.T) {
	_, srv := newFakeController(t, nil)
	d, err := process.New(process.Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Name: "node-1", DataDir: t.TempDir(), Drivers: []driver.Driver{d}}, client.New(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	monitored := newInstance(a, api.Assignment{Instance: api.Instance{ID: "db-vm-0-aaaa"}}, d)
	monitored.extStatus = map[string]api.ExtensionStatus{extensions.Monitor: {Name: extensions.Monitor, Version: "1.0", Status: api.ExtensionSuccess,
		Figures: &api.GuestFigures{CPUPercent: 12.5, CPUs: 1, Load1: new(0.25), MemoryTotal: 240 << 20, MemoryUsed: 40 << 20, DiskTotal: 500 << 20, DiskUsed: 100 << 20}}}
	plain := newInstance(a, api.Assignment{Instance: api.Instance{ID: "web-w-0-bbbb"}}, d)
	a.mu.Lock()
	a.instances[monitored.id], a.instances[plain.id] = monitored, plain
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.instances, monitored.id)
		delete(a.instances, plain.id)
		a.mu.Unlock()
	}()

	got := metricstest.Scrape(t, nil, a.Addr()+metrics.Path, a.apiToken)
	for name, want := range map[string]float64{
		"weft_guest_cpu_percent": 12.5, "weft_guest_load1": 0.25,
		"weft_guest_memory_total_bytes": 240 << 20, "weft_guest_memory_used_bytes": 40 << 20,
		"weft_guest_disk_total_bytes": 500 << 20, "weft_guest_disk_used_bytes": 100 << 20,
	} {
		if v, ok := got.Value(name, "instance", monitored.id); !ok || v != want {
			t.Errorf("%s{instance=%s} = %v (present %v), want %v", name, monitored.id, v, ok, want)
		}
		if _, ok := got.Value(name, "instance", plain.id); ok {
			t.Errorf("%s for %s, which has no monitor", name, plain.id)
		}
	}

	st := plain.runMonitor(ctx, api.ExtensionRef{Name: extensions.Monitor, Version: "1.0"}, "enable")
	if st.Status != api.ExtensionError || !strings.Contains(st.Message, "no usable cgroups") {
		t.Errorf("monitor on a process instance: %+v", st)
	}
}

func TestMonitorInterval(t *testing.T) {
	for _, tc := range []struct {
		settings map[string]any
		want     time.Duration
	}{
		{nil, time.Minute},
		{map[string]any{"interval": 10.0}, 10 * time.Second},
		{map[string]any{"interval": 0.5}, 5 * time.Second},
		{map[string]any{"interval": "often"}, time.Minute},
	} {
		if got := monitorInterval(api.ExtensionRef{Settings: tc.settings}); got != tc.want {
			t.Errorf("interval of %v: %v, want %v", tc.settings, got, tc.want)
		}
	}
}
