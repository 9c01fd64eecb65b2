package container

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// network is an instance's own network namespace, joined to the host by
// a veth pair on a /30 of 10.88.0.0/16: the host side is .1, the
// container's eth0 .2. Nothing is routed beyond the host: the shim relays
// the role's ports from the host to the container's address.
type network struct {
	Slot      int    `json:"slot"`
	Namespace string `json:"namespace"` // name under /run/netns
	HostLink  string `json:"hostLink"`
}

const (
	slots   = 1 << 14 // /30s in 10.88.0.0/16
	netFile = "network.json"
)

var subnet = netip.MustParseAddr("10.88.0.0").As4()

func (n network) addr(host int) netip.Addr {
	a := subnet
	v := n.Slot*4 + host
	a[2], a[3] = byte(v>>8), byte(v)
	return netip.AddrFrom4(a)
}

// ContainerAddr is the container's address, where the shim relays to.
func (n network) ContainerAddr() netip.Addr { return n.addr(2) }

// NetnsPath is the namespace's bind mount.
func (n network) NetnsPath() string { return filepath.Join("/run/netns", n.Namespace) }

// allocate takes a free slot for id, host-wide: slots are files made with
// O_EXCL in ipamDir, which every agent on the host shares (their
// containers share the host's routing table). It starts at a hash of id so
// that allocations rarely collide.
func allocate(ipamDir, id string) (network, error) {
	if err := os.MkdirAll(ipamDir, 0o755); err != nil {
		return network{}, fmt.Errorf("network: %w", err)
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	start := int(h.Sum32() % slots)
	for i := 0; i < slots; i++ {
		slot := (start + i) % slots
		if slot == 0 {
			continue // 10.88.0.0/30 stays unused, so addresses never end in .0.0
		}
		f, err := os.OpenFile(filepath.Join(ipamDir, fmt.Sprint(slot)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return network{}, fmt.Errorf("network: %w", err)
		}
		f.WriteString(id)
		f.Close()
		return network{Slot: slot, Namespace: fmt.Sprintf("weft-%d", slot), HostLink: fmt.Sprintf("wc%d", slot)}, nil
	}
	return network{}, errors.New("network: no free address: 16384 containers on this host")
}

func release(ipamDir string, n network) {
	os.Remove(filepath.Join(ipamDir, fmt.Sprint(n.Slot)))
}

// metadataAddr is where a container finds the node's instance metadata
// service, as on Azure: the shim relays it from inside the container's
// namespace to the agent's address (see Start).
const metadataAddr = "169.254.169.254"

// create makes the namespace and the veth pair with their addresses.
func (n network) create() error {
	n.destroy() // a leftover of a crashed start
	if err := ip(nil, "netns", "add", n.Namespace); err != nil {
		return err
	}
	host := fmt.Sprintf("link add %s type veth peer name eth0 netns %s\naddr add %s/30 dev %s\nlink set %s up\n",
		n.HostLink, n.Namespace, n.addr(1), n.HostLink, n.HostLink)
	inside := fmt.Sprintf("link set lo up\naddr add %s/32 dev lo\naddr add %s/30 dev eth0\nlink set eth0 up\nroute add default via %s\n",
		metadataAddr, n.addr(2), n.addr(1))
	if err := ip(strings.NewReader(host), "-batch", "-"); err != nil {
		n.destroy()
		return err
	}
	if err := ip(strings.NewReader(inside), "-n", n.Namespace, "-batch", "-"); err != nil {
		n.destroy()
		return err
	}
	return nil
}

// destroy deletes the namespace, which takes the veth pair with it.
func (n network) destroy() {
	ip(nil, "netns", "delete", n.Namespace)
	ip(nil, "link", "delete", n.HostLink)
}

func ip(stdin *strings.Reader, args ...string) error {
	cmd := exec.Command("ip", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("network: ip %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	return nil
}
