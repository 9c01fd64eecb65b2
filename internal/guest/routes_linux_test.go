package guest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSetRoutesInANamespace: the host's routes request, through the
// protocol, makes the routes of the guest's interface with the MAC the
// node gave it exactly the VPN's routes, through the gateway's address,
// in a real network namespace: added, changed (a gateway at another
// address, a peer network gone), and all removed (the VPN deleted), with
// a stray route of its own removed too, while the connected route and
// the other interface's routes (the default route) stay. A MAC no
// interface has, a route covering everything and a gateway off the
// network are refused with errors naming them.
func TestSetRoutesInANamespace(t *testing.T) {
	ns := testNamespace(t)
	const mac = "02:07:0a:14:00:05"
	ip(t, ns, "link add vnet type veth peer name vnetpeer")
	ip(t, ns, "link set vnet address "+mac)
	ip(t, ns, "addr add 10.20.0.5/24 dev vnet")
	ip(t, ns, "link set vnet up")
	ip(t, ns, "link set vnetpeer up")
	ip(t, ns, "link add user type veth peer name userpeer")
	ip(t, ns, "addr add 10.0.2.15/24 dev user")
	ip(t, ns, "link set user up")
	ip(t, ns, "link set userpeer up")
	ip(t, ns, "route add default via 10.0.2.2 dev user")
	ip(t, ns, "route add 10.50.0.0/16 via 10.20.0.9 dev vnet") // not the node's

	a := New(Options{NetNS: "/run/netns/" + ns, MetadataListen: "none"})
	c := serve(t, a, false)
	ctx := ctxTimeout(t, 10*time.Second)
	set := func(via string, routes ...string) error {
		var pfx []netip.Prefix
		for _, r := range routes {
			pfx = append(pfx, netip.MustParsePrefix(r))
		}
		var v netip.Addr
		if via != "" {
			v = netip.MustParseAddr(via)
		}
		return c.SetRoutes(ctx, strings.ToUpper(mac), pfx, v)
	}
	routes := func() string { return ip(t, ns, "-4 route show") }
	want := func(step string, has, hasNot []string) {
		t.Helper()
		got := routes()
		for _, r := range has {
			if !strings.Contains(got, r) {
				t.Errorf("%s: no route %q in\n%s", step, r, got)
			}
		}
		for _, r := range hasNot {
			if strings.Contains(got, r) {
				t.Errorf("%s: route %q still there:\n%s", step, r, got)
			}
		}
	}
	kept := []string{"default via 10.0.2.2 dev user", "10.20.0.0/24 dev vnet proto kernel", "10.0.2.0/24 dev user proto kernel"}

	if err := set("10.20.0.2", "192.168.77.0/24", "192.168.80.0/22"); err != nil {
		t.Fatal(err)
	}
	want("added", append(kept, "192.168.77.0/24 via 10.20.0.2 dev vnet", "192.168.80.0/22 via 10.20.0.2 dev vnet"), []string{"10.50.0.0/16"})

	if err := set("10.20.0.3", "192.168.77.0/24"); err != nil {
		t.Fatal(err)
	}
	want("changed", append(kept, "192.168.77.0/24 via 10.20.0.3 dev vnet"), []string{"192.168.80.0", "via 10.20.0.2"})

	if err := set(""); err != nil {
		t.Fatal(err)
	}
	want("removed", kept, []string{"192.168.77.0", "via 10.20.0."})

	for _, tc := range []struct {
		mac, via string
		routes   []string
		says     string
	}{
		{"02:07:0a:14:00:99", "10.20.0.2", []string{"192.168.77.0/24"}, "no interface has MAC 02:07:0a:14:00:99"},
		{mac, "10.20.0.2", []string{"0.0.0.0/0"}, "route 0.0.0.0/0"},
		{mac, "", []string{"192.168.77.0/24"}, "via"},
		{"nonsense", "10.20.0.2", nil, `mac "nonsense"`},
		{mac, "10.30.0.2", []string{"192.168.77.0/24"}, "192.168.77.0/24"}, // the gateway is off the network
	} {
		var pfx []netip.Prefix
		for _, r := range tc.routes {
			pfx = append(pfx, netip.MustParsePrefix(r))
		}
		var v netip.Addr
		if tc.via != "" {
			v = netip.MustParseAddr(tc.via)
		}
		err := c.SetRoutes(ctx, tc.mac, pfx, v)
		var ge *Error
		if !errors.As(err, &ge) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("SetRoutes(%s, %v, %s) = %v; want a guest error saying %q", tc.mac, tc.routes, tc.via, err, tc.says)
		}
	}
	want("after the refusals", kept, []string{"192.168.77.0"})
}

// testNamespace makes a network namespace of the test's own, removed when
// it ends; the test is skipped without root or ip(8).
func testNamespace(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	name := fmt.Sprintf("weft-guest-test-%d", os.Getpid())
	exec.Command("ip", "netns", "delete", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
	return name
}

// ip runs ip(8) with args in namespace ns and returns its output.
func ip(t *testing.T, ns, args string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, strings.Fields(args)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns, args, err, out)
	}
	return string(out)
}
