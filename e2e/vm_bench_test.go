package e2e

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// BenchmarkPersistentVMRelocation kills the host of a persistent VM (its
// node agent and the VM's QEMU, SIGKILL) and times the two halves of its
// recovery: down-ms from the kill to the controller declaring the node
// down (the test cluster's heartbeat TTL, 1.5 s, plus up to one check), and
// relocate-ms from then to the VM running on the other node from the same
// disks with its guest answering `weft vm exec keeper -- true`. The killed
// agent comes back before the next run, so there is always a node to move
// to. Run it with -benchtime 3x.
func BenchmarkPersistentVMRelocation(b *testing.B) {
	requireQEMU(b)
	c := newCluster(b, 2, storageFlags(b)...)
	c.mustWeft("image", "build", "tiny")
	c.mustWeft("vm", "create", "keeper", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi", "--wait")
	ctx := context.Background()
	var downs, relocs []time.Duration
	for b.Loop() {
		vm := c.vm("keeper")
		victim := vm.Node
		qemu := qemuOf(b, vm.Instance)

		start := time.Now()
		c.kill9(c.agents[victim])
		syscall.Kill(qemu, syscall.SIGKILL)
		pollFor(b, "the node declared down", time.Minute, func() bool {
			n, err := c.client.Node(ctx, victim)
			return err == nil && n.State == api.NodeDown
		})
		down := time.Now()
		pollFor(b, "the VM running on the other node", 3*time.Minute, func() bool {
			v, err := c.client.VM(ctx, "keeper")
			return err == nil && v.Node != "" && v.Node != victim && v.State == api.StateRunning
		})
		pollFor(b, "the guest answering", time.Minute, func() bool {
			_, _, code := c.weft("vm", "exec", "keeper", "--", "true")
			return code == 0
		})
		reloc := time.Since(down)
		downs = append(downs, down.Sub(start))
		relocs = append(relocs, reloc)
		b.Logf("%s: declared down after %v, the VM answered on %s %v later",
			victim, down.Sub(start).Round(time.Millisecond), c.vm("keeper").Node, reloc.Round(time.Millisecond))

		c.startAgent(victim)
		c.waitFor("the node back", 30*time.Second, func() bool {
			n, err := c.client.Node(ctx, victim)
			return err == nil && n.State == api.NodeReady
		})
	}
	b.ReportMetric(p50ms(downs), "down-ms")
	b.ReportMetric(p50ms(relocs), "relocate-ms")
	b.ReportMetric(0, "ns/op") // the loop also brings the node back; the two halves are the figures
}

// pollFor checks cond every 20 ms until it holds, finer than
// cluster.waitFor's 100 ms because the time it holds is the measurement;
// it fails the benchmark after timeout.
func pollFor(b *testing.B, what string, timeout time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func p50ms(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[(len(ds)-1)/2].Microseconds()) / 1000
}

// The helpers below are the benchmark's versions of requireQEMU,
// storageFlags and qemuOf, which take a *testing.T.
