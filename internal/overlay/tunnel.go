package overlay

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/weftcloud/weft/internal/linkroutes"
)

// A network's VPN gateway (package wireguard's tunnel, run by the node
// agent) lives in a named namespace of its own, joined to the network like
// an endpoint (Attach) and holding the tunnel's TUN device: the namespace
// routes between the two, and nowhere else (it has no other interface and
// no default route). These helpers make that namespace and program it.

// EnsureNamespace makes the named network namespace name under /run/netns
// unless it exists, and returns its path.
func EnsureNamespace(name string) (string, error) { return ensureNamedNetns(name) }

// DeleteNamespace removes the named namespace name; a missing one is not
// an error.
func DeleteNamespace(name string) error { return deleteNamedNetns(name) }

// Namespaces lists the named namespaces whose names start with prefix.
func Namespaces(prefix string) ([]string, error) { return namedNetns(prefix) }

// NamespacePath is where the named namespace name is mounted.
func NamespacePath(name string) string { return filepath.Join(netnsDir, name) }

// InNamespace runs fn on an OS thread inside the namespace at path ("" is
// the caller's own); sockets and TUN devices fn makes stay there.
func InNamespace(path string, fn func() error) error { return inNetns(path, fn) }

// RouteTunnel programs the namespace at path to route through TUN device
// dev: dev up, with address addr when valid (as wg-quick's Address), and
// exactly routes on dev; forwarding on, so the namespace routes between dev
// and its other interfaces.
func RouteTunnel(path, dev string, addr netip.Prefix, routes []netip.Prefix) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("overlay: open namespace %s: %w", path, err)
	}
	defer ns.Close()
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("overlay: netlink in %s: %w", path, err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("overlay: find %s in %s: %w", dev, path, err)
	}
	if addr.IsValid() {
		if err := setOnlyAddress(nl, l, addr); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
	}
	if err := nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("overlay: set %s up in %s: %w", dev, path, err)
	}
	if err := linkroutes.Sync(nl, l, routes, netip.Addr{}); err != nil {
		return fmt.Errorf("overlay: routes of %s in %s: %w", dev, path, err)
	}
	err = inNetns(path, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0)
	})
	if err != nil {
		return fmt.Errorf("overlay: forwarding in %s: %w", path, err)
	}
	return nil
}
