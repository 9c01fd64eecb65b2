package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/extensions"
)

// The built-in monitor extension: while it is enabled on an instance, the
// agent samples the instance's figures through the driver
// (driver.GuestMonitor: the vm runtime's guest agent; the process and
// container runtimes' cgroups) every interval and puts the latest in the
// extension's status (api.ExtensionStatus.Figures), which the controller
// shows with the instance and the VM, and which the agent exports as
// weft_guest_* metrics.

const (
	defaultMonitorInterval = time.Minute
	minMonitorInterval     = 5 * time.Second
)

// monitorInterval is the interval setting, bounded.
func monitorInterval(ref api.ExtensionRef) time.Duration {
	v, ok := ref.Settings["interval"].(float64)
	if !ok {
		return defaultMonitorInterval
	}
	return max(time.Duration(v*float64(time.Second)), minMonitorInterval)
}

// runMonitor is each of monitor's handlers: enable and update take a
// sample at once (a guest that cannot be read fails them) and start
// sampling; disable stops it.
func (in *instance) runMonitor(ctx context.Context, ref api.ExtensionRef, handler string) api.ExtensionStatus {
	mon, ok := in.drv.(driver.GuestMonitor)
	if !ok {
		return in.setExtStatus(ref, handler, api.ExtensionError, 0,
			"monitor reads an instance's figures: the "+in.drv.Name()+" runtime cannot", "")
	}
	in.stopMonitor()
	if handler != "enable" && handler != "update" {
		return in.setExtStatus(ref, handler, api.ExtensionSuccess, 0, handler+" succeeded: not sampling", "")
	}
	in.setExtStatus(ref, handler, api.ExtensionTransitioning, 0, "", "")
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	raw, err := mon.GuestFigures(sctx, in.id)
	cancel()
	f := in.apiFigures(raw)
	if err != nil {
		return in.setExtStatus(ref, handler, api.ExtensionError, 0, fmt.Sprintf("%s: %v", handler, err), "")
	}
	every := monitorInterval(ref)
	st := in.setExtStatus(ref, handler, api.ExtensionSuccess, 0, fmt.Sprintf("%s succeeded: sampling every %s", handler, every), "")
	in.putFigures(f)
	st.Figures = &f

	mctx, stop := context.WithCancel(ctx)
	in.mu.Lock()
	in.monitorStop = stop
	in.mu.Unlock()
	go in.sample(mctx, mon, every)
	return st
}

// sample reads the guest's figures every interval until ctx ends or the
// instance is done. A failed sample keeps the last figures.
func (in *instance) sample(ctx context.Context, mon driver.GuestMonitor, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.done:
			return
		case <-tick.C:
		}
		sctx, cancel := context.WithTimeout(ctx, min(every, 30*time.Second))
		f, err := mon.GuestFigures(sctx, in.id)
		cancel()
		if err != nil {
			in.a.log.Debug("monitor: sample", "instance", in.id, "err", err)
			continue
		}
		in.putFigures(in.apiFigures(f))
	}
}

// apiFigures is how the API shows the instance's figures: a load average
// only for a VM guest, the one runtime whose instances have their own.
func (in *instance) apiFigures(f driver.GuestFigures) api.GuestFigures {
	out := api.GuestFigures{
		CPUPercent: f.CPUPercent, CPUs: f.CPUs, SampledAt: f.SampledAt,
		MemoryTotal: api.Bytes(f.MemoryTotal), MemoryUsed: api.Bytes(f.MemoryUsed),
		DiskTotal: api.Bytes(f.DiskTotal), DiskUsed: api.Bytes(f.DiskUsed),
	}
	if in.drv.Name() == api.RuntimeVM {
		out.Load1 = &f.Load1
	}
	return out
}

// putFigures puts the figures in monitor's status, while it stands at
// success (a handler running shows its own status until it ends).
func (in *instance) putFigures(f api.GuestFigures) {
	in.mu.Lock()
	st, ok := in.extStatus[extensions.Monitor]
	if ok && st.Status == api.ExtensionSuccess {
		st.Figures = &f
		in.extStatus[extensions.Monitor] = st
	}
	in.mu.Unlock()
	if ok {
		in.a.changed()
	}
}

// stopMonitor stops sampling, if it runs.
func (in *instance) stopMonitor() {
	in.mu.Lock()
	stop := in.monitorStop
	in.monitorStop = nil
	in.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// The monitor's figures as metrics, one series per monitored instance of
// any runtime ("guest": the instance as it sees itself; api.GuestFigures
// says what each figure is on each runtime).
var (
	guestCPUDesc      = prometheus.NewDesc("weft_guest_cpu_percent", "How busy a monitored instance's CPUs (a VM's, or a process or container instance's quota) were at its last sample (100: all of them).", []string{"instance"}, nil)
	guestLoadDesc     = prometheus.NewDesc("weft_guest_load1", "A monitored VM guest's 1-minute load average.", []string{"instance"}, nil)
	guestMemTotalDesc = prometheus.NewDesc("weft_guest_memory_total_bytes", "A monitored VM's memory, or a process or container instance's memory limit (the node's memory without one).", []string{"instance"}, nil)
	guestMemUsedDesc  = prometheus.NewDesc("weft_guest_memory_used_bytes", "A monitored instance's memory in use (a VM's total less available; a cgroup's working set).", []string{"instance"}, nil)
	guestDiskTotDesc  = prometheus.NewDesc("weft_guest_disk_total_bytes", "The size of a monitored VM's root file system, or of the file system holding a process or container instance's folder.", []string{"instance"}, nil)
	guestDiskUsedDesc = prometheus.NewDesc("weft_guest_disk_used_bytes", "The bytes used on a monitored VM's root file system, or in a process or container instance's folder.", []string{"instance"}, nil)
)

var guestDescs = []*prometheus.Desc{guestCPUDesc, guestLoadDesc, guestMemTotalDesc, guestMemUsedDesc, guestDiskTotDesc, guestDiskUsedDesc}

// collectGuestFigures sends the latest figures of in's monitor, if any.
func (in *instance) collectGuestFigures(ch chan<- prometheus.Metric) {
	in.mu.Lock()
	st := in.extStatus[extensions.Monitor]
	in.mu.Unlock()
	f := st.Figures
	if f == nil {
		return
	}
	values := map[*prometheus.Desc]float64{
		guestCPUDesc:      f.CPUPercent,
		guestMemTotalDesc: float64(f.MemoryTotal), guestMemUsedDesc: float64(f.MemoryUsed),
		guestDiskTotDesc: float64(f.DiskTotal), guestDiskUsedDesc: float64(f.DiskUsed),
	}
	if f.Load1 != nil {
		values[guestLoadDesc] = *f.Load1
	}
	for desc, v := range values {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, in.id)
	}
}
