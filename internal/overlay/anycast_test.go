package overlay

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAnycastGateway: an endpoint on either host finds the network's
// gateway at the same MAC (gatewayMAC), and each host's bridge keeps that
// MAC on its own gateway port even after frames from the other host's
// gateway came in with it: an endpoint that moves between hosts, or whose
// ARP entry was answered by another host, still reaches the local gateway
// (and DNS server).
func TestAnycastGateway(t *testing.T) {
	l := newLab(t)
	hs := l.hosts("h1", "h2")
	ctx := context.Background()
	for i, h := range hs {
		if err := h.Apply(ctx, twoNetworks(hs[1-i].addr)); err != nil {
			t.Fatal(err)
		}
	}
	a1 := l.endpoint(hs[0], "a1", 100, "10.50.0.10")
	a2 := l.endpoint(hs[1], "a2", 100, "10.50.0.20")
	want := gatewayMAC(100).String()
	for _, ns := range []string{a1, a2} {
		// A few tries: the first echo waits on ARP, and a loaded
		// machine may take longer than one ping's second.
		var err error
		for range 5 {
			if err = ping(ns, gateway.String()); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("ping the gateway from %s: %v", ns, err)
		}
		// Both hosts' gateways answered the ARP request; all with one MAC.
		nl := l.handle(ns)
		neighs, err := nl.NeighList(0, unix.AF_INET)
		nl.Close()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, n := range neighs {
			if a, _ := netip.AddrFromSlice(n.IP.To4()); a == gateway {
				found = true
				if n.HardwareAddr.String() != want {
					t.Errorf("%s has the gateway at %s, want %s", ns, n.HardwareAddr, want)
				}
			}
		}
		if !found {
			t.Errorf("%s has no neighbour entry for the gateway", ns)
		}
	}
	for _, h := range hs {
		out, err := exec.Command("bridge", "-n", strings.TrimPrefix(h.ns, "/run/netns/"), "fdb", "show", "br", bridgeName(100)).CombinedOutput()
		if err != nil {
			t.Skipf("bridge fdb show: %v: %s", err, out)
		}
		line := ""
		for _, s := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(s, want+" ") && !strings.Contains(s, "self") {
				line = s
			}
		}
		if !strings.Contains(line, "dev "+gatewayLink(100)+" ") || !strings.Contains(line, "sticky") {
			t.Errorf("%s: the bridge's entry for the gateway MAC is %q, want it sticky on %s:\n%s", h.name, line, gatewayLink(100), out)
		}
	}
}
