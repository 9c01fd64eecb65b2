package overlay

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEndpointRoutes: an endpoint's routes (the networks behind a VPN
// gateway) go through Via on its interface; attaching it again with other
// routes leaves exactly those, and its connected route and the default
// route elsewhere alone.
func TestEndpointRoutes(t *testing.T) {
	l := newLab(t)
	hs := l.hosts("h1", "h2")
	ctx := context.Background()
	if err := hs[0].Apply(ctx, twoNetworks(hs[1].addr)); err != nil {
		t.Fatal(err)
	}
	path := l.netns("e")
	e := Endpoint{ID: "e", Network: 100, Netns: path, Interface: "eth1", Address: netip.MustParsePrefix("10.50.0.30/24"),
		Via: netip.MustParseAddr("10.50.0.40"), Routes: []netip.Prefix{netip.MustParsePrefix("192.168.5.0/24"), netip.MustParsePrefix("172.16.0.0/12")}}
	routes := func() []string {
		nl := l.handle(path)
		defer nl.Close()
		list, err := nl.RouteList(nil, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range list {
			s := "default"
			if r.Dst != nil {
				s = r.Dst.String()
			}
			if r.Gw != nil {
				s += " via " + r.Gw.String()
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return out
	}
	if _, err := hs[0].Attach(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got, want := routes(), []string{"10.50.0.0/24", "172.16.0.0/12 via 10.50.0.40", "192.168.5.0/24 via 10.50.0.40"}; !slices.Equal(got, want) {
		t.Errorf("routes: %v, want %v", got, want)
	}
	e.Routes = e.Routes[:1]
	if _, err := hs[0].Attach(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got, want := routes(), []string{"10.50.0.0/24", "192.168.5.0/24 via 10.50.0.40"}; !slices.Equal(got, want) {
		t.Errorf("routes after one went: %v, want %v", got, want)
	}
	e.Routes = nil
	if _, err := hs[0].Attach(ctx, e); err != nil {
		t.Fatal(err)
	}
	if got, want := routes(), []string{"10.50.0.0/24"}; !slices.Equal(got, want) {
		t.Errorf("routes after the gateway went: %v, want %v", got, want)
	}
	e.Routes, e.Via = e.Routes[:0:0], netip.Addr{}
	e.Routes = append(e.Routes, netip.MustParsePrefix("192.168.5.0/24"))
	if _, err := hs[0].Attach(ctx, e); err == nil {
		t.Error("routes without an address to route them through were taken")
	}
}
