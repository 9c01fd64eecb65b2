package guest

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// vnet is the VM's interface on its virtual network, as the node gives it
// on the kernel command line (see internal/driver/qemu's nic.go): the
// interface with MAC gets Addr, and resolv.conf names DNS.
type vnet struct {
	MAC    string // lower case
	Addr   netip.Prefix
	DNS    netip.Addr
	Search []string
}

// parseVNet reads the weft.vnet.* words of the kernel command line: nil
// without weft.vnet.mac, an error when the words are incomplete or do not
// parse.
func parseVNet(args map[string]string) (*vnet, error) {
	mac, ok := args["weft.vnet.mac"]
	if !ok {
		return nil, nil
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, fmt.Errorf("weft.vnet.mac: %w", err)
	}
	v := &vnet{MAC: hw.String()}
	if v.Addr, err = netip.ParsePrefix(args["weft.vnet.ip"]); err != nil {
		return nil, fmt.Errorf("weft.vnet.ip: %w", err)
	}
	if v.DNS, err = netip.ParseAddr(args["weft.vnet.dns"]); err != nil {
		return nil, fmt.Errorf("weft.vnet.dns: %w", err)
	}
	if s := args["weft.vnet.search"]; s != "" {
		v.Search = strings.Split(s, ",")
	}
	return v, nil
}

// resolvConf is the guest's /etc/resolv.conf on the network: its DNS
// server alone, which answers the network's names (and no others, as for
// containers on a network).
func (v *vnet) resolvConf() string {
	s := "# Weft: the DNS server of the VM's virtual network\nnameserver " + v.DNS.String() + "\n"
	if len(v.Search) > 0 {
		s += "search " + strings.Join(v.Search, " ") + "\n"
	}
	return s
}

// pickInterfaces names, among the machine's interfaces (name → MAC, lower
// case; without lo), the user-mode networking one and the virtual
// network's (v's MAC; "" when v is nil or it has not appeared). The
// user-mode interface is eth0, unless that is the network's: the order in
// which the kernel names the two virtio-net devices is not the node's to
// choose, their MACs are. ok is false until every interface needed is
// there.
func pickInterfaces(ifaces map[string]string, v *vnet) (user, private string, ok bool) {
	if v == nil {
		_, ok = ifaces["eth0"]
		return "eth0", "", ok
	}
	for _, name := range slices.Sorted(maps.Keys(ifaces)) {
		switch {
		case ifaces[name] == v.MAC && private == "":
			private = name
		case ifaces[name] != v.MAC && user == "" && strings.HasPrefix(name, "eth"):
			user = name
		}
	}
	return user, private, user != "" && private != ""
}
