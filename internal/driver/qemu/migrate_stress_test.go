package qemu

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/driver"
)

var long = flag.Bool("long", false, "run the long VM tests (TestLiveMigrationStress: 50 live migrations under load, minutes)")

// TestLiveMigrationStress migrates a VM back and forth between two
// drivers 50 times while the host's cores are busy, and checks that the
// guest's memory survives every move. The guest runs `weft memcheck`
// (vmimage/testdata/guestmain), which keeps 128 MiB of its 256 MiB filled
// with a pattern it rewrites at 16 MiB/s and verifies ten times a second:
// a page the migration sent before its last write, or did not send, shows
// up as a mismatch on the console and in memcheck's count. It also fails
// on a guest kernel panic or oops. It logs the downtime percentiles
// recorded in BENCHMARKS.md.
func TestLiveMigrationStress(t *testing.T) {
	if !*long {
		t.Skip("50 live migrations take minutes: run with -long")
	}
	requireImage(t)
	const migrations = 50
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	drivers := [2]*Driver{newDriver(t, Config{}), newDriver(t, Config{})}
	spec := driver.Spec{
		ID: "memcheck", Dir: instanceDir(t, "memcheck"), Image: "test", ImageDir: imageDir,
		Command: []string{"/usr/bin/weft", "memcheck", "-mib", "128", "-rate", "16"},
		Memory:  256 << 20, CPU: 1,
	}
	startVM(t, drivers[0], spec)
	t.Cleanup(func() {
		for _, d := range drivers {
			d.Stop(context.Background(), spec.ID, time.Second)
			d.Remove(context.Background(), spec.ID)
		}
	})
	stopLoad := hostLoad(runtime.NumCPU())
	defer stopLoad()
	at := drivers[0]
	mc := waitMemcheck(t, at, spec.ID, 1)

	var downtimes, totals []time.Duration
	for i := range migrations {
		src, dst := drivers[i%2], drivers[(i+1)%2]
		dst.Remove(ctx, spec.ID) // the copy that left dst before
		dspec := spec
		dspec.Dir = instanceDir(t, spec.ID)
		listen := "unix:" + filepath.Join(dspec.Dir, "migrate.sock")
		if _, err := dst.StartIncoming(ctx, dspec, listen); err != nil {
			t.Fatalf("migration %d: StartIncoming: %v", i+1, err)
		}
		stats, err := src.MigrateTo(ctx, spec.ID, listen, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("migration %d: MigrateTo: %v", i+1, err)
		}
		if st, err := dst.FinishIncoming(ctx, spec.ID); err != nil || !st.Running {
			t.Fatalf("migration %d: FinishIncoming: %+v, %v\nconsole:\n%s", i+1, st, err, consoleEnd(t, dst, spec.ID))
		}
		at = dst
		downtimes, totals = append(downtimes, stats.Downtime), append(totals, stats.Total)
		// Two more rounds: memcheck has read all its memory since the move.
		mc = waitMemcheck(t, at, spec.ID, mc.rounds+2)
		if bad := guestFailure(t, at, spec.ID); mc.errors > 0 || bad != "" {
			t.Fatalf("migration %d (total %v, downtime %v): %d memcheck errors; console: %q\nconsole:\n%s",
				i+1, stats.Total, stats.Downtime, mc.errors, bad, consoleEnd(t, at, spec.ID))
		}
	}
	t.Logf("%d migrations, 0 guest errors; downtime p50 %.0f ms, p99 %.0f ms; total p50 %.0f ms, p99 %.0f ms",
		migrations, msAt(downtimes, 0.5), msAt(downtimes, 0.99), msAt(totals, 0.5), msAt(totals, 0.99))
}

// memcheckStatus is what `weft memcheck` last wrote to its status file.
type memcheckStatus struct{ rounds, errors int }

// waitMemcheck waits until memcheck in the guest has completed at least
// rounds rounds, and returns its counts.
func waitMemcheck(t *testing.T, d *Driver, id string, rounds int) memcheckStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var st memcheckStatus
		out := execOut(t, d, id, "cat /tmp/memcheck 2>/dev/null || true")
		fmt.Sscanf(out, "rounds %d errors %d", &st.rounds, &st.errors)
		if st.rounds >= rounds || st.errors > 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcheck did not reach round %d (status %q)\nconsole:\n%s", rounds, out, consoleEnd(t, d, id))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// guestFailure returns the first console line that shows a memcheck
// mismatch or a guest kernel panic or oops, or "".
func guestFailure(t *testing.T, d *Driver, id string) string {
	for _, line := range strings.Split(readLogs(t, d, id), "\n") {
		for _, bad := range []string{"memcheck: MISMATCH", "Kernel panic", "BUG:", "Oops", "general protection fault", "stack-protector"} {
			if strings.Contains(line, bad) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// consoleEnd is the last 40 lines of the instance's console.
func consoleEnd(t *testing.T, d *Driver, id string) string {
	lines := strings.Split(strings.TrimSpace(readLogs(t, d, id)), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// hostLoad keeps n goroutines spinning on the host's cores, competing
// with QEMU's vCPU and migration threads as other work would, until the
// returned function is called.
func hostLoad(n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				for range 100000 {
					x = x*31 + 7
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
