package networks

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weftcloud/weft/api"
)

// Member names what holds an address: an instance slot of a role (a VM
// is the one slot of its role), SERVICE/ROLE/SLOT. The slot, not the
// instance, holds it, so the instances that fill the slot in turn
// (restarts, upgrades, relocation, live migration) all have it.
func Member(service, role string, slot int) string {
	return service + "/" + role + "/" + strconv.Itoa(slot)
}

// Want is a member that wants an address in a subnet of the network (""
// the first).
type Want struct {
	Member string
	Subnet string
}

// Assign makes the network's addresses of service's members exactly want:
// a member that has an address in the subnet it wants keeps it; one that
// is no longer wanted, or wants another subnet, loses it; a new member
// gets the lowest free address of its subnet that is not busy (busy:
// addresses instances still hold, though their members let them go). A
// subnet's network, gateway (api.Gateway) and broadcast addresses are
// never handed out. When a subnet has too few free addresses, Assign
// returns an api.CodeConflict error naming it, and r is left half done:
// the caller drops it.
func (r *Record) Assign(service string, want []Want, busy map[netip.Addr]bool) error {
	subnets := map[string]netip.Prefix{}
	for _, s := range r.Subnets {
		subnets[s.Name], _ = netip.ParsePrefix(s.CIDR) // canonical: api.CreateNetwork made it
	}
	wanted := map[string]netip.Prefix{}
	for _, w := range want {
		s, ok := r.Subnet(w.Subnet)
		if !ok {
			return api.Errorf(api.CodeInvalid, "network %s has no subnet %s (it has %s)", r.Name, w.Subnet, r.subnetNames())
		}
		wanted[w.Member] = subnets[s.Name]
	}
	if r.Members == nil {
		r.Members = map[string]string{}
	}
	taken := map[netip.Addr]bool{}
	for m, a := range r.Members {
		addr, err := netip.ParseAddr(a)
		sub, wants := wanted[m]
		if strings.HasPrefix(m, service+"/") && (!wants || !sub.Contains(addr)) || err != nil {
			delete(r.Members, m)
			continue
		}
		taken[addr] = true
	}
	need := map[netip.Prefix]int{}
	for _, w := range want {
		if _, ok := r.Members[w.Member]; !ok {
			need[wanted[w.Member]]++
		}
	}
	// Every subnet is checked before any address is handed out, so the
	// error names what is missing in each.
	var full []string
	for sub, n := range need {
		if free := freeCount(sub, taken, busy); free < n {
			full = append(full, fmt.Sprintf("subnet %s (%s) has %d free addresses of %d, and %d more are asked for",
				r.subnetOf(sub), sub, free, hosts(sub), n))
		}
	}
	if len(full) > 0 {
		slices.Sort(full)
		return api.Errorf(api.CodeConflict, "network %s is full: %s", r.Name, strings.Join(full, "; "))
	}
	for _, w := range want {
		if _, ok := r.Members[w.Member]; ok {
			continue
		}
		sub := wanted[w.Member]
		addr := firstFree(sub, taken, busy)
		taken[addr] = true
		r.Members[w.Member] = addr.String()
	}
	return nil
}

// Release lets every address of service's members go.
func (r *Record) Release(service string) bool {
	n := len(r.Members)
	maps.DeleteFunc(r.Members, func(m, _ string) bool { return strings.HasPrefix(m, service+"/") })
	return len(r.Members) != n
}

// Address is a member's address, and false when it holds none.
func (r *Record) Address(member string) (string, bool) {
	a, ok := r.Members[member]
	return a, ok
}

// hosts is how many members a subnet can hold: all its addresses but
// the network's, the gateway's and the broadcast address.
func hosts(sub netip.Prefix) int { return 1<<(32-sub.Bits()) - 3 }

// memberRange is the first and last address a member may get.
func memberRange(sub netip.Prefix) (first, last netip.Addr) {
	first = api.Gateway(sub).Next()
	b := sub.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= 1<<(32-sub.Bits()) - 1 // the broadcast address
	n--
	return first, netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// freeCount is how many addresses of sub neither taken nor busy holds.
func freeCount(sub netip.Prefix, taken, busy map[netip.Addr]bool) int {
	n := hosts(sub)
	first, last := memberRange(sub)
	in := func(a netip.Addr) bool { return a.Compare(first) >= 0 && a.Compare(last) <= 0 }
	for a := range taken {
		if in(a) {
			n--
		}
	}
	for a := range busy {
		if in(a) && !taken[a] {
			n--
		}
	}
	return n
}

func firstFree(sub netip.Prefix, taken, busy map[netip.Addr]bool) netip.Addr {
	first, last := memberRange(sub)
	for a := first; a.Compare(last) <= 0; a = a.Next() {
		if !taken[a] && !busy[a] {
			return a
		}
	}
	return netip.Addr{} // freeCount said there was one
}

func (r *Record) subnetOf(sub netip.Prefix) string {
	for _, s := range r.Subnets {
		if s.CIDR == sub.String() {
			return s.Name
		}
	}
	return sub.String()
}

func (r *Record) subnetNames() string {
	var names []string
	for _, s := range r.Subnets {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}
