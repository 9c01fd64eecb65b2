package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkVMToInstanceOverlay measures a VM on a virtual network talking
// to a process instance of the network over the overlay (vmNetworkCluster:
// two hosts; the VM and the instance are usually on different ones, which
// it logs): ping-ms, the average round trip of 20 pings from the guest to
// the instance (busybox ping, 0.1 s apart), and from the instance to the
// guest; and MB/s, 32 MiB sent from the guest to a busybox nc in the
// instance, timed on the host around `weft vm exec` less that of `weft vm
// exec true`. Run it with -benchtime 3x.
func BenchmarkVMToInstanceOverlay(b *testing.B) {
	c, _, _ := vmNetworkCluster(b)
	tool, vm := c.instances("tools")[0], c.vm("keeper")
	b.Logf("the VM on %s at %s, the process instance on %s at %s", vm.Node, vm.PrivateAddress, tool.Node, tool.PrivateAddress)
	var toInst, toVM, mbs []float64
	for b.Loop() {
		toInst = append(toInst, avgRTT(b, c.mustWeft("vm", "exec", "keeper", "--", "ping", "-c", "20", "-i", "0.1", tool.PrivateAddress)))
		out, code := c.execIn("", tool.ID, "busybox", "ping", "-c", "20", "-i", "0.1", vm.PrivateAddress)
		if code != 0 {
			b.Fatalf("ping from the instance: exit %d: %s", code, out)
		}
		toVM = append(toVM, avgRTT(b, out))

		const mib = 32
		if out, code := c.execIn("", tool.ID, "busybox", "sh", "-c", "busybox nc -l -p 9000 >/dev/null 2>&1 </dev/null &"); code != 0 {
			b.Fatalf("the sink in the instance: exit %d: %s", code, out)
		}
		pollFor(b, "the sink listening", 30*time.Second, func() bool {
			out, _ := c.execIn("", tool.ID, "busybox", "netstat", "-ltn")
			return strings.Contains(out, ":9000 ")
		})
		start := time.Now()
		c.mustWeft("vm", "exec", "keeper", "--", "true")
		execCost := time.Since(start)
		start = time.Now()
		c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c",
			fmt.Sprintf("dd if=/dev/zero bs=64k count=%d 2>/dev/null | nc -w 10 %s 9000", mib*16, tool.PrivateAddress))
		took := time.Since(start) - execCost
		mbs = append(mbs, mib*(1<<20)/1e6/took.Seconds())
	}
	b.ReportMetric(mean(toInst), "ping-ms")
	b.ReportMetric(mean(toVM), "ping-back-ms")
	b.ReportMetric(mean(mbs), "MB/s")
}

// avgRTT reads the average of busybox ping's "round-trip min/avg/max =
// a/b/c ms" line.
func avgRTT(tb testing.TB, out string) float64 {
	tb.Helper()
	for _, line := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(line, "min/avg/max = "); ok {
			f := strings.Split(strings.Fields(v)[0], "/")
			if len(f) == 3 {
				if avg, err := strconv.ParseFloat(f[1], 64); err == nil {
					return avg
				}
			}
		}
	}
	tb.Fatalf("no round trip in ping's output: %s", out)
	return 0
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
