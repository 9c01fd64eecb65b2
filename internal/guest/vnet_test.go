package guest

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseVNet: the node's weft.vnet.* words become the network's
// interface; without them there is none, and incomplete ones are an error
// naming the word.
func TestParseVNet(t *testing.T) {
	v, err := parseVNet(map[string]string{"weft.vnet.mac": "02:07:0A:14:00:05", "weft.vnet.ip": "10.20.0.5/16",
		"weft.vnet.dns": "10.20.0.1", "weft.vnet.search": "db.internal,internal"})
	want := &vnet{MAC: "02:07:0a:14:00:05", Addr: netip.MustParsePrefix("10.20.0.5/16"), DNS: netip.MustParseAddr("10.20.0.1"),
		Search: []string{"db.internal", "internal"}}
	if err != nil || !cmp.Equal(v, want, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
		t.Errorf("parseVNet = %+v, %v; want %+v", v, err, want)
	}
	if got := v.resolvConf(); !strings.Contains(got, "\nnameserver 10.20.0.1\nsearch db.internal internal\n") {
		t.Errorf("resolv.conf %q", got)
	}
	if v, err := parseVNet(map[string]string{"weft.hostname": "vm1"}); v != nil || err != nil {
		t.Errorf("without weft.vnet words: %+v, %v", v, err)
	}
	if _, err := parseVNet(map[string]string{"weft.vnet.mac": "02:07:0a:14:00:05", "weft.vnet.dns": "10.20.0.1"}); err == nil || !strings.Contains(err.Error(), "weft.vnet.ip") {
		t.Errorf("without weft.vnet.ip: %v", err)
	}
}

// TestPickInterfaces: the network's interface is found by its MAC,
// whichever name the kernel gave it, and the user-mode one is the other;
// nothing is picked until both are there.
func TestPickInterfaces(t *testing.T) {
	v := &vnet{MAC: "02:07:0a:14:00:05"}
	for _, tc := range []struct {
		ifaces        map[string]string
		v             *vnet
		user, private string
		ok            bool
	}{
		{map[string]string{"eth0": "52:54:00:12:34:56"}, nil, "eth0", "", true},
		{map[string]string{}, nil, "eth0", "", false},
		{map[string]string{"eth0": "52:54:00:12:34:56", "eth1": v.MAC}, v, "eth0", "eth1", true},
		{map[string]string{"eth0": v.MAC, "eth1": "52:54:00:12:34:56"}, v, "eth1", "eth0", true},
		{map[string]string{"eth0": "52:54:00:12:34:56"}, v, "eth0", "", false},
		{map[string]string{"eth0": v.MAC}, v, "", "eth0", false},
	} {
		user, private, ok := pickInterfaces(tc.ifaces, tc.v)
		if user != tc.user || private != tc.private || ok != tc.ok {
			t.Errorf("pickInterfaces(%v, %v) = %q, %q, %v; want %q, %q, %v", tc.ifaces, tc.v, user, private, ok, tc.user, tc.private, tc.ok)
		}
	}
}
