package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/guest"
)

// A VM on a virtual network (driver.Spec.NIC) has a second virtio-net
// device, on the tap the agent made on the network's bridge, besides the
// user-mode one that carries its published ports. The guest learns its
// address from the kernel command line, which the guest agent reads as
// init at every boot (internal/guest's configureNetwork):
//
//	weft.vnet.mac=02:...        which interface: the one with this MAC
//	weft.vnet.ip=10.20.0.5/16   its address and the network's prefix
//	weft.vnet.dns=10.20.0.1     the network's DNS server (resolv.conf)
//	weft.vnet.search=a,b        resolv.conf's search domains
//
// The command line rather than a message through the guest agent: the
// address is in place before the workload starts, after every reboot and
// whether or not the host is connected, and nothing needs redoing after a
// live migration (the guest's state goes with it). A DHCP server per
// network on the host was the other way; it would also serve images
// without Weft's guest agent, at the price of a server and its leases.
//
// The network's routes to the peer's networks behind its VPN gateway
// (driver.NIC's Routes through Via) change while the VM runs, as gateways
// are made and deleted: they go through the guest agent (OpRoutes), once
// the guest has its address and before the workload starts, and again
// whenever the node agent has new ones (SetRoutes).

// nicNetdev is the QEMU id of the network's netdev.
const nicNetdev = "vnet0"

// nicArgPrefix starts the kernel command line's words for the NIC. They
// are the node's: an image's own weft.vnet.* words are dropped.
const nicArgPrefix = "weft.vnet."

// checkNIC refuses a NIC whose fields would not survive QEMU's option
// syntax or the kernel command line, and an image that cannot configure it.
func checkNIC(nic *driver.NIC, kernel, guestAgent bool) error {
	if nic == nil {
		return nil
	}
	if !kernel {
		return errors.New("the image boots through its own bootloader, and the node passes a VM its private address on the kernel command line: only images with a kernel (weft image build, or import --kernel) join virtual networks")
	}
	if !guestAgent {
		return errors.New("the image has no guest agent to configure its private address")
	}
	var errs []error
	if nic.Tap == "" || strings.ContainsAny(nic.Tap, ", =/") || len(nic.Tap) > 15 {
		errs = append(errs, fmt.Errorf("tap device %q", nic.Tap))
	}
	if mac, err := net.ParseMAC(nic.MAC); err != nil || len(mac) != 6 || mac[0]&1 != 0 {
		errs = append(errs, fmt.Errorf("MAC %q is not a unicast Ethernet address", nic.MAC))
	}
	if p, err := netip.ParsePrefix(nic.Address); err != nil || !p.Addr().Is4() {
		errs = append(errs, fmt.Errorf("address %q is not an IPv4 address with a prefix length", nic.Address))
	}
	if a, err := netip.ParseAddr(nic.DNS); err != nil || !a.Is4() {
		errs = append(errs, fmt.Errorf("DNS server %q is not an IPv4 address", nic.DNS))
	}
	for _, p := range nic.Routes {
		if !p.IsValid() || !p.Addr().Is4() || p.Bits() == 0 {
			errs = append(errs, fmt.Errorf("route %v is not an IPv4 prefix narrower than 0.0.0.0/0", p))
		}
	}
	if len(nic.Routes) > 0 && !nic.Via.Is4() {
		errs = append(errs, fmt.Errorf("the routes' gateway %v is not an IPv4 address", nic.Via))
	}
	for _, d := range nic.Search {
		if d == "" || strings.Trim(d, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" {
			errs = append(errs, fmt.Errorf("search domain %q", d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("virtual network interface: %w", err)
	}
	return nil
}

// nicArgs are QEMU's arguments for nic: a netdev on its tap (made by the
// agent, so no scripts) and a virtio-net device with its MAC.
func nicArgs(m machine, nic *driver.NIC) []string {
	return []string{
		"-netdev", "tap,id=" + nicNetdev + ",ifname=" + nic.Tap + ",script=no,downscript=no",
		"-device", m.device("virtio-net") + ",netdev=" + nicNetdev + ",mac=" + strings.ToLower(nic.MAC),
	}
}

// nicWords are the kernel command line's words for nic (none for nil).
func nicWords(nic *driver.NIC) []string {
	if nic == nil {
		return nil
	}
	words := []string{
		nicArgPrefix + "mac=" + strings.ToLower(nic.MAC),
		nicArgPrefix + "ip=" + nic.Address,
		nicArgPrefix + "dns=" + nic.DNS,
	}
	if len(nic.Search) > 0 {
		words = append(words, nicArgPrefix+"search="+strings.Join(nic.Search, ","))
	}
	return words
}

// withoutNICWords drops the weft.vnet.* words from an image's command line.
func withoutNICWords(words []string) []string {
	return slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, nicArgPrefix) })
}

// awaitNIC waits until the guest shows its private address, which its
// guest agent configures at boot beside answering the host: the workload,
// which may listen on it, starts after.
func awaitNIC(ctx context.Context, c *guest.Client, nic *driver.NIC) error {
	p, err := netip.ParsePrefix(nic.Address)
	if err != nil {
		return err // checkNIC's already
	}
	want := p.Addr().String()
	for {
		ping, err := c.Ping(ctx)
		if err != nil {
			return fmt.Errorf("wait for the private address %s: %w", want, err)
		}
		if slices.Contains(ping.Addresses, want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the guest did not configure its private address %s (its guest agent has %v: is it older than the node's?): %w",
				want, ping.Addresses, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SetRoutes makes the routes of running VM id's interface on its virtual
// network exactly routes through via, through its guest agent.
func (d *Driver) SetRoutes(ctx context.Context, id string, routes []netip.Prefix, via netip.Addr) error {
	in, err := d.lookup(id)
	if err != nil {
		return err
	}
	if in.st.NICMAC == "" {
		return fmt.Errorf("qemu: routes of %s: the VM is on no virtual network", id)
	}
	c, err := d.running(ctx, id, "routes")
	if err != nil {
		return err
	}
	if err := c.SetRoutes(ctx, in.st.NICMAC, routes, via); err != nil {
		return fmt.Errorf("qemu: routes of %s: %w", id, err)
	}
	return nil
}
