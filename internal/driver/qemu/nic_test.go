package qemu

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftcloud/weft/internal/driver"
)

var testNIC = driver.NIC{Tap: "w000007t1a2b3c4", MAC: "02:07:0A:14:00:05", Address: "10.20.0.5/16", DNS: "10.20.0.1",
	Search: []string{"db.internal", "internal"}}

// TestNICArgs: a VM on a virtual network gets a virtio-net device on the
// agent's tap with its MAC, after the user-mode one, and its settings on
// the kernel command line, where an image's own weft.vnet.* words give
// way to the node's.
func TestNICArgs(t *testing.T) {
	nic := testNIC
	b := boot{QEMU: "qemu", Kernel: "/img/kernel", Hostname: "vm1", TSCKHz: 2000, CPUs: 1, MemoryMB: 256,
		Cmdline: "quiet weft.vnet.ip=192.168.9.9/24 weft.vnet.dns=8.8.8.8", NIC: &nic}
	joined := strings.Join(b.args(), " ")
	user := strings.Index(joined, "-device virtio-net-device,netdev=net0")
	tap := strings.Index(joined, "-netdev tap,id=vnet0,ifname=w000007t1a2b3c4,script=no,downscript=no -device virtio-net-device,netdev=vnet0,mac=02:07:0a:14:00:05")
	if user < 0 || tap < user {
		t.Errorf("the network's device is missing or before the user-mode one:\n%s", joined)
	}
	want := "quiet console=ttyS0 tsc_early_khz=2000 weft.hostname=vm1 weft.vnet.mac=02:07:0a:14:00:05 weft.vnet.ip=10.20.0.5/16 weft.vnet.dns=10.20.0.1 weft.vnet.search=db.internal,internal"
	if got := b.cmdline(); got != want {
		t.Errorf("cmdline\n got %q\nwant %q", got, want)
	}
	b.NIC, b.Machine.bios = nil, true
	if joined := strings.Join(b.args(), " "); strings.Contains(joined, "vnet0") {
		t.Errorf("a VM on no network has the network's device:\n%s", joined)
	}
	if got := b.cmdline(); strings.Contains(got, "weft.vnet") {
		t.Errorf("a VM on no network keeps the image's weft.vnet words: %q", got)
	}
}

// TestCheckNIC: what would break QEMU's options or the command line is
// refused, naming the field, and so are images that cannot configure the
// address (no kernel to pass it to, or no guest agent to apply it).
func TestCheckNIC(t *testing.T) {
	bad := func(f func(*driver.NIC)) *driver.NIC {
		n := testNIC
		f(&n)
		return &n
	}
	for _, tc := range []struct {
		nic               *driver.NIC
		kernel, withAgent bool
		want              string
	}{
		{&testNIC, true, true, ""},
		{nil, false, false, ""},
		{&testNIC, false, true, "boots through its own bootloader"},
		{&testNIC, true, false, "no guest agent"},
		{bad(func(n *driver.NIC) { n.Tap = "tap0,script=/x" }), true, true, `tap device "tap0,script=/x"`},
		{bad(func(n *driver.NIC) { n.MAC = "03:00:00:00:00:01" }), true, true, "not a unicast Ethernet address"},
		{bad(func(n *driver.NIC) { n.Address = "10.20.0.5" }), true, true, `address "10.20.0.5"`},
		{bad(func(n *driver.NIC) { n.DNS = "dns" }), true, true, `DNS server "dns"`},
		{bad(func(n *driver.NIC) { n.Search = []string{"a b"} }), true, true, `search domain "a b"`},
		{bad(func(n *driver.NIC) {
			n.Routes, n.Via = []netip.Prefix{netip.MustParsePrefix("192.168.77.0/24")}, netip.MustParseAddr("10.20.0.2")
		}), true, true, ""},
		{bad(func(n *driver.NIC) { n.Routes = []netip.Prefix{netip.MustParsePrefix("192.168.77.0/24")} }), true, true, "the routes' gateway"},
		{bad(func(n *driver.NIC) {
			n.Routes, n.Via = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, netip.MustParseAddr("10.20.0.2")
		}), true, true, "route 0.0.0.0/0"},
	} {
		err := checkNIC(tc.nic, tc.kernel, tc.withAgent)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkNIC(%+v, kernel %v, agent %v) = %v, want %q", tc.nic, tc.kernel, tc.withAgent, err, tc.want)
		}
	}
}
