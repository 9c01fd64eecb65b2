package guest

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/linkroutes"
)

// setRoutes makes the routes of the interface whose MAC is mac exactly
// routes, through via, in the network namespace at nsPath ("" for the
// agent's own).
func setRoutes(nsPath, mac string, routes []netip.Prefix, via netip.Addr) error {
	nl, err := netlinkIn(nsPath)
	if err != nil {
		return err
	}
	defer nl.Close()
	links, err := nl.LinkList()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		if l.Attrs().HardwareAddr.String() == mac {
			if err := linkroutes.Sync(nl, l, routes, via); err != nil {
				return fmt.Errorf("%s: %w", l.Attrs().Name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("no interface has MAC %s", mac)
}

// netlinkIn opens netlink in the namespace at nsPath, "" for the caller's:
// its routing family alone (a guest kernel may lack the others netlink
// opens by default, such as XFRM, and refuses them: "protocol not
// supported").
func netlinkIn(nsPath string) (*netlink.Handle, error) {
	if nsPath == "" {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
}
