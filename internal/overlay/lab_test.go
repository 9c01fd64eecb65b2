package overlay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// The lab: simulated hosts are network namespaces joined by a veth pair
// (the underlay), each with its own Host; endpoints are namespaces too.
// Everything is named after a random lab ID and removed when the test ends.

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("overlay tests need root: they make network namespaces, bridges and VXLAN devices")
	}
}

type lab struct {
	t  testing.TB
	id string
}

type labHost struct {
	*Host
	name string
	ns   string // path
	addr netip.Addr
}

func newLab(t testing.TB) *lab {
	requireRoot(t)
	return &lab{t: t, id: fmt.Sprintf("%04x", rand.IntN(1<<16))}
}

// netns makes a named namespace for the test with lo up.
func (l *lab) netns(name string) string {
	l.t.Helper()
	full := "wo" + l.id + name
	path, err := ensureNamedNetns(full)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { deleteNamedNetns(full) })
	l.linkUp(path, "lo")
	return path
}

func (l *lab) handle(path string) *netlink.Handle {
	l.t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		l.t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		l.t.Fatal(err)
	}
	return h
}

func (l *lab) linkUp(path, name string) {
	l.t.Helper()
	h := l.handle(path)
	defer h.Close()
	link, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkSetUp(link)
	}
	if err != nil {
		l.t.Fatalf("%s up in %s: %v", name, path, err)
	}
}

// hosts makes n hosts on one underlay (a bridge-less pair of veths for
// two hosts), 192.168.77.1, .2, ...
func (l *lab) hosts(names ...string) []*labHost {
	l.t.Helper()
	if len(names) != 2 {
		l.t.Fatal("the lab joins two hosts")
	}
	var hs []*labHost
	for i, name := range names {
		lh := &labHost{name: name, ns: l.netns(name), addr: netip.AddrFrom4([4]byte{192, 168, 77, byte(i + 1)})}
		hs = append(hs, lh)
	}
	peer, err := netns.GetFromPath(hs[1].ns)
	if err != nil {
		l.t.Fatal(err)
	}
	defer peer.Close()
	h := l.handle(hs[0].ns)
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "u0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "u0", PeerNamespace: netlink.NsFd(peer)}); err != nil {
		l.t.Fatalf("underlay veth: %v", err)
	}
	for _, lh := range hs {
		nl := l.handle(lh.ns)
		u, err := nl.LinkByName("u0")
		if err == nil {
			err = nl.AddrAdd(u, &netlink.Addr{IPNet: &net.IPNet{IP: lh.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}})
		}
		nl.Close()
		if err != nil {
			l.t.Fatal(err)
		}
		l.linkUp(lh.ns, "u0")
		lh.Host = l.open(lh)
	}
	return hs
}

// open opens a Host for lh (again, as an agent that restarted would) and
// removes its gateway namespaces at the end (the host's own namespace takes
// its devices with it).
func (l *lab) open(lh *labHost) *Host {
	l.t.Helper()
	prefix := "wo" + l.id + lh.name + "-"
	h, err := Open(Config{NetNS: lh.ns, Underlay: lh.addr, NetnsPrefix: prefix})
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		h.Close()
		names, _ := namedNetns(prefix)
		for _, n := range names {
			deleteNamedNetns(n)
		}
	})
	return h
}

// endpoint makes a namespace named name and attaches it to network vni on
// lh with address addr/24 and the gateway .1.
func (l *lab) endpoint(lh *labHost, name string, vni uint32, addr string) string {
	l.t.Helper()
	path := l.netns(name)
	a := netip.MustParseAddr(addr)
	gw := netip.AddrFrom4([4]byte{a.As4()[0], a.As4()[1], a.As4()[2], 1})
	_, err := lh.Attach(context.Background(), Endpoint{ID: name, Network: vni, Netns: path,
		Address: netip.PrefixFrom(a, 24), Gateway: gw})
	if err != nil {
		l.t.Fatal(err)
	}
	return path
}

// serveName answers every TCP connection to port in the namespace with
// name, until the test ends.
func serveName(t testing.TB, ns string, port int, name string) {
	t.Helper()
	var ln net.Listener
	err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name))
			c.Close()
		}
	}()
}

// dialName connects from the namespace to addr and returns what the other
// end says.
func dialName(ns, addr string) (string, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// dialNameSoon is dialName tried for up to five seconds: the first
// connection across hosts waits for ARP through the VXLAN flood, which a
// loaded machine can make slower than one dial's timeout.
func dialNameSoon(ns, addr string) (got string, err error) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if got, err = dialName(ns, addr); err == nil {
			return got, nil
		}
	}
	return got, err
}

// ping sends one ICMP echo from the namespace to addr and waits a second
// for the reply.
func ping(ns, addr string) error {
	var pc *icmp.PacketConn
	err := inNetns(ns, func() (err error) {
		pc, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return err
	}
	defer pc.Close()
	id := rand.IntN(1 << 16)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("weft")}}
	b, _ := msg.Marshal(nil)
	dst := &net.IPAddr{IP: net.ParseIP(addr)}
	if _, err := pc.WriteTo(b, dst); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s: %w", addr, err)
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply || from.String() != addr {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && bytes.Equal(e.Data, []byte("weft")) {
			return nil
		}
	}
}

// links returns name -> index of the devices in a namespace.
func (l *lab) links(ns string) map[string]int {
	l.t.Helper()
	h := l.handle(ns)
	defer h.Close()
	all, err := h.LinkList()
	if err != nil {
		l.t.Fatal(err)
	}
	m := map[string]int{}
	for _, k := range all {
		m[k.Attrs().Name] = k.Attrs().Index
	}
	return m
}

func listenUDP(addr string) (net.PacketConn, error) { return net.ListenPacket("udp4", addr) }

// serveEcho echoes what each TCP connection to port in the namespace
// sends, until the other end closes.
func serveEcho(t testing.TB, ns string, port int) {
	t.Helper()
	var ln net.Listener
	err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

// dialFrom connects from the namespace, from local port port, to addr.
func dialFrom(ns string, port int, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{Port: port}}
		c, err = d.Dial("tcp4", addr)
		return err
	})
	return c, err
}

// echo sends msg on c and waits two seconds for it to come back.
func echo(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != msg {
		return fmt.Errorf("echo: got %q, want %q", b, msg)
	}
	return nil
}

// arpThroughTap opens the tap device (in the host namespace ns) as QEMU
// would, sends an ARP request from mac/from for target and returns the MAC
// address in the reply.
func arpThroughTap(ns, device string, mac net.HardwareAddr, from, target netip.Addr) (net.HardwareAddr, error) {
	var f *os.File
	err := inNetns(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(device)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", device, err)
		}
		f = os.NewFile(uintptr(fd), device)
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	frame := append([]byte{}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	frame = append(frame, mac...)
	frame = append(frame, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1)
	frame = append(frame, mac...)
	frame = append(frame, from.AsSlice()...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, target.AsSlice()...)
	deadline := time.Now().Add(5 * time.Second)
	f.SetDeadline(deadline)
	buf := make([]byte, 2048)
	// The bridge port forwards once the tap has its carrier (now that it
	// is open): ask again until the answer comes.
	for time.Now().Before(deadline) {
		if _, err := f.Write(frame); err != nil {
			return nil, fmt.Errorf("write to tap: %w", err)
		}
		f.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := f.Read(buf)
			if err != nil {
				break
			}
			b := buf[:n]
			if n >= 42 && b[12] == 0x08 && b[13] == 0x06 && b[21] == 2 && bytes.Equal(b[28:32], target.AsSlice()) {
				return net.HardwareAddr(append([]byte{}, b[22:28]...)), nil
			}
		}
	}
	return nil, fmt.Errorf("no ARP reply for %v", target)
}
