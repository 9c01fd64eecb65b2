package guest

import (
	"errors"
	"fmt"
	"net"
)

// The routes of the VM's interface on its virtual network: the networks on
// premises behind the network's VPN gateway, through the gateway's address
// on the network. The node sends them (OpRoutes) once the guest is up and
// whenever they change (a gateway made or deleted while the VM runs); the
// agent makes the interface's routes exactly those, so that a gateway
// deleted takes its routes with it. They are not on the kernel command
// line, which cannot change while the VM runs.

// checkRoutes refuses routes that are not for the virtual network's
// interface: a MAC that is not one, a prefix that is not IPv4 or covers
// everything (it would take the place of the guest's default route), a
// gateway that is not an IPv4 address.
func checkRoutes(req request) error {
	var errs []error
	if _, err := net.ParseMAC(req.MAC); err != nil {
		errs = append(errs, fmt.Errorf("mac %q is not a MAC address", req.MAC))
	}
	for _, p := range req.Routes {
		if !p.IsValid() || !p.Addr().Is4() || p.Bits() == 0 {
			errs = append(errs, fmt.Errorf("route %v is not an IPv4 prefix narrower than 0.0.0.0/0", p))
		}
	}
	if len(req.Routes) > 0 && (!req.Via.IsValid() || !req.Via.Is4()) {
		errs = append(errs, fmt.Errorf("via %v is not an IPv4 address", req.Via))
	}
	return errors.Join(errs...)
}
