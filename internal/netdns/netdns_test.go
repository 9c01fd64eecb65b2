package netdns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// serve starts s on loopback UDP and TCP and returns the address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	// The same port for UDP and TCP: the UDP one the kernel picks may be
	// taken for TCP by another process; pick again then.
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return pc.LocalAddr().String()
}

// query asks addr over net ("udp" or "tcp") and returns the rcode and the
// A records' addresses, sorted.
func query(t *testing.T, netw, addr, name string, qtype uint16) (int, []string) {
	t.Helper()
	c := &dns.Client{Net: netw, Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s: %v", netw, name, err)
	}
	var got []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			got = append(got, a.A.String())
		}
	}
	slices.Sort(got)
	return r.Rcode, got
}

func TestAnswers(t *testing.T) {
	s := New(nil)
	s.Set(Records{
		Instances: []Instance{
			{Name: "web-0", Role: "web", Service: "shop", Addr: netip.MustParseAddr("10.1.0.10"), Healthy: true},
			{Name: "web-1", Role: "web", Service: "shop", Addr: netip.MustParseAddr("10.1.0.11"), Healthy: true},
			{Name: "web-2", Role: "web", Service: "shop", Addr: netip.MustParseAddr("10.1.0.12"), Healthy: false},
			{Name: "db-0", Role: "db", Service: "shop", Addr: netip.MustParseAddr("10.1.0.20"), Healthy: false},
		},
		VMs: []VM{{Name: "build", Addr: netip.MustParseAddr("10.1.0.30")}},
	})
	addr := serve(t, s)
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web-0.web.shop.internal", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.10"}},
		{"WEB-1.Web.Shop.Internal", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.11"}},
		{"web-2.web.shop.internal", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.12"}}, // unhealthy, still its own name
		{"web.shop.internal", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.10", "10.1.0.11"}},
		{"db.shop.internal", dns.TypeA, dns.RcodeSuccess, nil}, // no healthy instance: the name exists, no address
		{"build.vm.internal", dns.TypeA, dns.RcodeSuccess, []string{"10.1.0.30"}},
		{"web.shop.internal", dns.TypeAAAA, dns.RcodeSuccess, nil},
		{"nope.shop.internal", dns.TypeA, dns.RcodeNameError, nil},
		{"shop.internal", dns.TypeA, dns.RcodeNameError, nil},
		{"other.vm.internal", dns.TypeA, dns.RcodeNameError, nil},
		{"example.com", dns.TypeA, dns.RcodeNameError, nil},
	}
	for _, netw := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			rcode, got := query(t, netw, addr, tt.name, tt.qtype)
			if rcode != tt.rcode || !cmp.Equal(got, tt.want) {
				t.Errorf("%s %s %s: rcode %s %v, want %s %v", netw, tt.name, dns.TypeToString[tt.qtype],
					dns.RcodeToString[rcode], got, dns.RcodeToString[tt.rcode], tt.want)
			}
		}
	}
	// Set replaces the whole table: gone names are NXDOMAIN at once.
	s.Set(Records{VMs: []VM{{Name: "other", Addr: netip.MustParseAddr("10.1.0.31")}}})
	if rcode, _ := query(t, "udp", addr, "web-0.web.shop.internal", dns.TypeA); rcode != dns.RcodeNameError {
		t.Errorf("after Set: web-0 rcode %s, want NXDOMAIN", dns.RcodeToString[rcode])
	}
	if _, got := query(t, "udp", addr, "other.vm.internal", dns.TypeA); !cmp.Equal(got, []string{"10.1.0.31"}) {
		t.Errorf("after Set: other.vm = %v", got)
	}
}

// TestServeStopsAtOnce checks that Serve returns when its context ends
// even before the listeners have started.
func TestServeStopsAtOnce(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- New(nil).Serve(ctx, pc, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
