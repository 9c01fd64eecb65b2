// Package instancenet gives an instance a network namespace of its own
// (the container runtime's, and a process instance's on a virtual
// network), joined to the host by a veth pair on a /30 of 10.88.0.0/16:
// the host side is .1, the instance's eth0 .2. Nothing is routed beyond
// the host: the instance's shim relays the role's ports from the host to
// the instance's address, and the node's metadata service into the
// namespace (Relays).
package instancenet

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/shim"
)

// network is one instance's namespace and veth pair, kept in its
// directory (File) so that Close finds them after an agent restart.
type network struct {
	Slot      int    `json:"slot"`
	Namespace string `json:"namespace"` // name under /run/netns
	HostLink  string `json:"hostLink"`
}

const (
	slots = 1 << 14 // /30s in 10.88.0.0/16
	// File is where an instance's directory keeps its network.
	File = "network.json"
)

var subnet = netip.MustParseAddr("10.88.0.0").As4()

func (n network) addr(host int) netip.Addr {
	a := subnet
	v := n.Slot*4 + host
	a[2], a[3] = byte(v>>8), byte(v)
	return netip.AddrFrom4(a)
}

// Link is an instance's namespace, made by Open.
type Link struct{ n network }

// Addr is the instance's address, where the shim relays to.
func (l Link) Addr() netip.Addr { return l.n.addr(2) }

// NetnsPath is the namespace's bind mount.
func (l Link) NetnsPath() string { return filepath.Join("/run/netns", l.n.Namespace) }

// Open gives instance id, whose directory is dir, its namespace: a slot
// in ipamDir (which every agent on the host must share), the record in
// dir, the namespace and the veth pair. A failure leaves nothing behind.
func Open(ipamDir, dir, id string) (Link, error) {
	n, err := allocate(ipamDir, id)
	if err != nil {
		return Link{}, err
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, File), n); err != nil {
		release(ipamDir, n)
		return Link{}, err
	}
	if err := n.create(); err != nil {
		Close(ipamDir, dir)
		return Link{}, err
	}
	return Link{n}, nil
}

// Close removes the namespace of the instance whose directory is dir, if
// it has one, and frees its slot.
func Close(ipamDir, dir string) {
	var n network
	if atomicfile.ReadJSON(filepath.Join(dir, File), &n) == nil {
		n.destroy()
		release(ipamDir, n)
		os.Remove(filepath.Join(dir, File))
	}
}

// Relays are what the instance's shim relays into its namespace: each of
// ports from host to the same port at the instance's address, and the
// node's metadata service (env's api.EnvMetadata, on the node's loopback or
// address, which the namespace cannot reach) at MetadataAddr:80 (through
// metadataPort, see redirectMetadata). It
// returns env with api.EnvMetadata pointing there (a copy when changed).
func (l Link) Relays(host string, ports map[string]int, env map[string]string) ([]shim.Forward, map[string]string) {
	var fw []shim.Forward
	if u, err := url.Parse(env[api.EnvMetadata]); err == nil && u.Host != "" {
		env = maps.Clone(env)
		env[api.EnvMetadata] = "http://" + MetadataAddr
		fw = append(fw, shim.Forward{Netns: l.NetnsPath(), Listen: net.JoinHostPort(MetadataAddr, strconv.Itoa(metadataPort)), Target: u.Host})
	}
	for _, port := range ports {
		p := strconv.Itoa(port)
		fw = append(fw, shim.Forward{Listen: net.JoinHostPort(host, p), Target: net.JoinHostPort(l.Addr().String(), p)})
	}
	return fw, env
}

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

// MetadataAddr is where an instance in its own namespace finds the node's
// instance metadata service, as on Azure: the shim relays it from inside
// the namespace to the agent's address (Relays).
const MetadataAddr = "169.254.169.254"

// create makes the namespace and the veth pair with their addresses.
func (n network) create() error {
	n.destroy() // a leftover of a crashed start
	if err := ip(nil, "netns", "add", n.Namespace); err != nil {
		return err
	}
	host := fmt.Sprintf("link add %s type veth peer name eth0 netns %s\naddr add %s/30 dev %s\nlink set %s up\n",
		n.HostLink, n.Namespace, n.addr(1), n.HostLink, n.HostLink)
	inside := fmt.Sprintf("link set lo up\naddr add %s/32 dev lo\naddr add %s/30 dev eth0\nlink set eth0 up\nroute add default via %s\n",
		MetadataAddr, n.addr(2), n.addr(1))
	if err := ip(strings.NewReader(host), "-batch", "-"); err != nil {
		n.destroy()
		return err
	}
	if err := ip(strings.NewReader(inside), "-n", n.Namespace, "-batch", "-"); err != nil {
		n.destroy()
		return err
	}
	if err := redirectMetadata(n.Namespace); err != nil {
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
