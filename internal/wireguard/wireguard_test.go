package wireguard

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/overlay"
)

func TestKeys(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Errorf("the key is not clamped: %x", k)
	}
	back, err := ParseKey(k.String())
	if err != nil || back != k {
		t.Errorf("ParseKey(String()) = %v, %v", back, err)
	}
	// RFC 7748's test vector (Alice's keys, section 6.1), in base64.
	alice, _ := ParseKey("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=")
	if got := alice.Public().String(); got != "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=" {
		t.Errorf("Alice's public key: %s", got)
	}
	for _, bad := range []string{"", "abc", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC=="} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) took it", bad)
		}
	}
}

// pair is two namespaces on one veth link (10.99.0.1 and .2), each with a
// tunnel to the other: wg0 with 10.98.0.1 and .2, each allowing only the
// other's tunnel address.
type pair struct {
	a, b   string // namespace paths
	ta, tb *Tunnel
}

func newPair(t testing.TB) *pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("tunnels need root (namespaces and TUN devices)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun")
	}
	id := fmt.Sprintf("%04x", rand.IntN(1<<16))
	p := &pair{}
	var names []string
	for _, side := range []string{"a", "b"} {
		name := "weft-wgtest-" + id + side
		path, err := overlay.EnsureNamespace(name)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		t.Cleanup(func() { overlay.DeleteNamespace(name) })
		if side == "a" {
			p.a = path
		} else {
			p.b = path
		}
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "-n", names[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", names[1])
	for i, n := range names {
		run("ip", "-n", n, "addr", "add", fmt.Sprintf("10.99.0.%d/24", i+1), "dev", "eth0")
		run("ip", "-n", n, "link", "set", "eth0", "up")
		run("ip", "-n", n, "link", "set", "lo", "up")
	}
	ka, _ := GenerateKey()
	kb, _ := GenerateKey()
	open := func(ns string, own, peer Key, port int, peerAt string, allowed string) *Tunnel {
		in := func(fn func() error) error { return overlay.InNamespace(ns, fn) }
		tun, err := Open(Config{Name: "wg0", TunIn: in, BindIn: in, PrivateKey: own, ListenPort: port,
			Peers: []Peer{{PublicKey: peer.Public(), Endpoint: netip.MustParseAddrPort(peerAt), AllowedIPs: []netip.Prefix{netip.MustParsePrefix(allowed)}}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tun.Close)
		return tun
	}
	p.ta = open(p.a, ka, kb, 51820, "10.99.0.2:51821", "10.98.0.2/32")
	p.tb = open(p.b, kb, ka, 51821, "10.99.0.1:51820", "10.98.0.1/32")
	if err := overlay.RouteTunnel(p.a, "wg0", netip.MustParsePrefix("10.98.0.1/32"), []netip.Prefix{netip.MustParsePrefix("10.98.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := overlay.RouteTunnel(p.b, "wg0", netip.MustParsePrefix("10.98.0.2/32"), []netip.Prefix{netip.MustParsePrefix("10.98.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	return p
}

// listen accepts one connection at a time in ns and hands each to serve.
func listen(t testing.TB, ns, addr string, serve func(net.Conn)) {
	t.Helper()
	var ln net.Listener
	if err := overlay.InNamespace(ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); serve(c) }()
		}
	}()
}

func dial(ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := overlay.InNamespace(ns, func() (err error) { c, err = net.DialTimeout("tcp4", addr, 10*time.Second); return err })
	return c, err
}

// TestTunnelCarriesOnlyAllowedSources: TCP from a's tunnel address
// reaches b through the tunnel (the UDP sockets in each namespace, not the
// test's), the counters move, and a packet a sends from an address b does
// not allow for it is dropped by b.
func TestTunnelCarriesOnlyAllowedSources(t *testing.T) {
	p := newPair(t)
	listen(t, p.b, "0.0.0.0:7000", func(c net.Conn) { fmt.Fprintf(c, "b sees %s\n", c.RemoteAddr()) })
	c, err := dial(p.a, "10.98.0.2:7000")
	if err != nil {
		t.Fatalf("through the tunnel: %v", err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(got), "b sees 10.98.0.1:") {
		t.Errorf("b answered %q", got)
	}
	st, err := p.ta.Stats()
	if err != nil || st.TxBytes == 0 || st.RxBytes == 0 || st.LastHandshake.IsZero() {
		t.Errorf("a's stats: %+v, %v", st, err)
	}
	// a gives itself another tunnel address, and a widens what it sends
	// to b; b still allows only 10.98.0.1 from a.
	if out, err := exec.Command("ip", "netns", "exec", nsName(p.a), "ip", "addr", "add", "10.98.0.9/32", "dev", "wg0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var spoof net.Conn
	err = overlay.InNamespace(p.a, func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.98.0.9")}}
		spoof, err = d.Dial("tcp4", "10.98.0.2:7000")
		return err
	})
	if err == nil {
		spoof.Close()
		t.Error("b accepted a connection from 10.98.0.9, which it does not allow from a")
	}
}

func nsName(path string) string { return path[strings.LastIndex(path, "/")+1:] }

// BenchmarkWireGuardRaw is the floor of the VPN gateway: one TCP stream
// through wireguard-go between two namespaces on a veth link, both ends
// in this process.
func BenchmarkWireGuardRaw(b *testing.B) {
	p := newPair(b)
	listen(b, p.b, "0.0.0.0:7001", func(c net.Conn) { io.Copy(io.Discard, c) })
	c, err := dial(p.a, "10.98.0.2:7001")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 1<<20)
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
