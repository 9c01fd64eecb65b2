package qemu

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/driver"
)

// The VM benchmarks boot the image TestMain builds, one VM at a time, and
// report percentiles rather than means: run BootToReady with -benchtime
// 10x and LiveMigration with -benchtime 3x. BootToReady's ns/op is the
// mean Start; LiveMigration reports none, its figures are QEMU's.

// counterLoop is a workload that dirties a little guest memory all the
// time: it writes a counter to a file (in the page cache) ten times a
// second, renamed into place so that a reader never meets it empty.
const counterLoop = `i=0; while true; do i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter; sleep 0.1; done`

// BenchmarkBootToReady times Start of an ephemeral VM (256 MiB, 1 vCPU):
// a fresh overlay, QEMU under a shim, the kernel's boot, the guest agent's
// first answer and the workload's start. Stop and Remove are not timed.
func BenchmarkBootToReady(b *testing.B) {
	requireBenchImage(b)
	d := benchDriver(b)
	b.Logf("accel %s", d.Attributes()["vm.accel"])
	var ds []time.Duration
	for b.Loop() {
		b.StopTimer()
		spec := benchSpec(b, "boot", 256<<20, "exec sleep 600")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		b.StartTimer()
		t0 := time.Now()
		_, err := d.Start(ctx, spec)
		took := time.Since(t0)
		b.StopTimer()
		if err != nil {
			cancel()
			b.Fatalf("Start: %v", err)
		}
		ds = append(ds, took)
		d.Stop(ctx, spec.ID, time.Second)
		d.Remove(ctx, spec.ID)
		cancel()
		b.StartTimer()
	}
	b.ReportMetric(msAt(ds, 0.5), "p50-ms")
	b.ReportMetric(msAt(ds, 0.99), "p99-ms")
}

// BenchmarkLiveMigration moves a running VM whose workload keeps writing
// to memory between two instances on this host over TCP on loopback, with
// a 50 ms downtime limit. It reports QEMU's own figures: total-ms from the
// start of the migration to the VM running at the destination, downtime-ms
// the time the VM was paused, and sent-MiB (zero pages cost next to
// nothing, so a mostly idle 1 GiB guest sends little more than a 256 MiB
// one). Booting the source, StartIncoming and FinishIncoming are outside
// these figures.
func BenchmarkLiveMigration(b *testing.B) {
	requireBenchImage(b)
	for _, size := range []struct {
		name   string
		memory int64
	}{
		{"256MiB", 256 << 20},
		{"1GiB", 1 << 30},
	} {
		b.Run(size.name, func(b *testing.B) {
			src, dst := benchDriver(b), benchDriver(b)
			var total, down []time.Duration
			var sent []float64
			for b.Loop() {
				stats := migrateOnce(b, src, dst, size.memory)
				total = append(total, stats.Total)
				down = append(down, stats.Downtime)
				sent = append(sent, float64(stats.RAM)/(1<<20))
				b.Logf("total %v, downtime %v, %d MiB sent", stats.Total, stats.Downtime, stats.RAM>>20)
			}
			b.ReportMetric(msAt(total, 0.5), "total-ms")
			b.ReportMetric(msAt(down, 0.5), "downtime-ms")
			slices.Sort(sent)
			b.ReportMetric(sent[len(sent)/2], "sent-MiB")
			b.ReportMetric(0, "ns/op") // the loop also boots VMs: QEMU's figures are the result
		})
	}
}

// migrateOnce boots a VM of the given memory on src running counterLoop,
// migrates it to dst and lets dst take it over, then stops and removes
// both sides.
func migrateOnce(b *testing.B, src, dst *Driver, memory int64) MigrationStats {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	spec := benchSpec(b, "mig", memory, counterLoop)
	if _, err := src.Start(ctx, spec); err != nil {
		b.Fatalf("Start: %v", err)
	}
	defer func() {
		src.Stop(ctx, spec.ID, time.Second)
		src.Remove(ctx, spec.ID)
	}()
	time.Sleep(time.Second) // the counter runs for a while: the guest is not idle

	dspec := spec
	dspec.Dir = benchDir(b, spec.ID)
	uri := fmt.Sprintf("tcp:127.0.0.1:%d", benchPort(b))
	if _, err := dst.StartIncoming(ctx, dspec, uri); err != nil {
		b.Fatalf("StartIncoming: %v", err)
	}
	defer func() {
		dst.Stop(ctx, spec.ID, time.Second)
		dst.Remove(ctx, spec.ID)
	}()
	stats, err := src.MigrateTo(ctx, spec.ID, uri, 50*time.Millisecond)
	if err != nil {
		b.Fatalf("MigrateTo: %v", err)
	}
	if st, err := dst.FinishIncoming(ctx, spec.ID); err != nil || !st.Running {
		b.Fatalf("FinishIncoming: %+v, %v", st, err)
	}
	return stats
}

// msAt returns the p-th quantile of ds by nearest rank (p99 of 10 runs is
// the slowest) in milliseconds; it sorts ds.
func msAt(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := max(int(math.Ceil(p*float64(len(ds))))-1, 0)
	return float64(ds[i].Microseconds()) / 1000
}

// The helpers below are the benchmarks' versions of those in qemu_test.go,
// which take a *testing.T.

func requireBenchImage(b *testing.B) {
	b.Helper()
	if imageSkip != "" {
		b.Skip(imageSkip)
	}
	if imageErr != nil {
		b.Fatal(imageErr)
	}
}

// benchDriver is a driver with the test binary as its shim, silent: the
// benchmarks' output is their figures. It uses KVM when it works here.
func benchDriver(b *testing.B) *Driver {
	b.Helper()
	d, err := New(Config{ShimCommand: []string{os.Args[0], "weft-shim"}})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// benchSpec is an ephemeral VM with one vCPU running script, in a fresh
// instance directory.
func benchSpec(b *testing.B, id string, memory int64, script string) driver.Spec {
	return driver.Spec{
		ID: id, Dir: benchDir(b, id), Image: "test", ImageDir: imageDir,
		Command: []string{"/bin/sh", "-c", script},
		Memory:  memory, CPU: 1,
	}
}

// benchDir is a fresh instance directory with a short path (it holds unix
// sockets), removed when the benchmark ends.
func benchDir(b *testing.B, id string) string {
	b.Helper()
	base, err := os.MkdirTemp("", "wq")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(base) })
	dir := filepath.Join(base, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// benchPort returns a loopback TCP port nothing listens on right now.
func benchPort(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
