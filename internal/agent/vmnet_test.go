package agent

import (
	"net/netip"
	"testing"
)

// TestVMMAC: a VM's MAC follows its network and address (which a
// persistent VM keeps wherever it runs), is locally administered unicast,
// and differs between two addresses of a network.
func TestVMMAC(t *testing.T) {
	a := vmMAC(0x123407, netip.MustParseAddr("10.20.0.5"))
	if got := a.String(); got != "02:07:0a:14:00:05" {
		t.Errorf("vmMAC = %s, want 02:07:0a:14:00:05", got)
	}
	if a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("%s is not a locally administered unicast address", a)
	}
	if b := vmMAC(0x123407, netip.MustParseAddr("10.20.0.6")); b.String() == a.String() {
		t.Errorf("two addresses, one MAC: %s", b)
	}
	if got := searchDomains("db"); len(got) != 2 || got[0] != "db.internal" || got[1] != "internal" {
		t.Errorf("searchDomains = %v", got)
	}
}
