package networks

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

func newRecord(t *testing.T, cidr string, subnets ...api.Subnet) Record {
	t.Helper()
	n, err := api.CreateNetwork{Name: "net", CIDR: cidr, Subnets: subnets}.Network("acme", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return Record{Network: n}
}

func slots(role string, n int) []Want {
	var w []Want
	for i := range n {
		w = append(w, Want{Member: Member("web", role, i)})
	}
	return w
}

// TestAssignKeepsEachSlotsAddress: a slot keeps its address through
// every later assignment that still wants it; a slot scaled away frees
// its address, which the lowest new slot takes again; the network,
// gateway and broadcast addresses are never handed out.
func TestAssignKeepsEachSlotsAddress(t *testing.T) {
	r := newRecord(t, "10.20.0.0/29") // .2 to .6 for members
	if err := r.Assign("web", slots("w", 3), nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"web/w/0": "10.20.0.2", "web/w/1": "10.20.0.3", "web/w/2": "10.20.0.4"}
	if diff := cmp.Diff(want, r.Members); diff != "" {
		t.Fatalf("first assignment (-want +got):\n%s", diff)
	}
	// Deploying again (an upgrade, a restart, a relocation: the slot is
	// the same) changes nothing.
	if err := r.Assign("web", slots("w", 3), nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, r.Members); diff != "" {
		t.Fatalf("same slots again (-want +got):\n%s", diff)
	}
	// Slot 1 scaled away (only slots 0 and 2 wanted): its address is free.
	if err := r.Assign("web", []Want{{Member: "web/w/0"}, {Member: "web/w/2"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Address("web/w/1"); ok {
		t.Errorf("slot 1 kept its address after it was scaled away: %v", r.Members)
	}
	if err := r.Assign("other", []Want{{Member: "other/x/0"}, {Member: "other/x/1"}, {Member: "other/x/2"}}, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for m, a := range r.Members {
		got[m] = a
	}
	want = map[string]string{"web/w/0": "10.20.0.2", "web/w/2": "10.20.0.4",
		"other/x/0": "10.20.0.3", "other/x/1": "10.20.0.5", "other/x/2": "10.20.0.6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("freed address reused lowest first (-want +got):\n%s", diff)
	}
	for _, a := range r.Members {
		if addr := netip.MustParseAddr(a); addr == netip.MustParseAddr("10.20.0.0") || addr == netip.MustParseAddr("10.20.0.1") || addr == netip.MustParseAddr("10.20.0.7") {
			t.Errorf("handed out %s", addr)
		}
	}
	if r.View().Used != 5 {
		t.Errorf("used = %d, want 5", r.View().Used)
	}
	if !r.Release("other") || len(r.Members) != 2 {
		t.Errorf("after releasing other: %v", r.Members)
	}
}

// TestAssignFullSubnet: asking for more addresses than a subnet has left
// is a conflict naming the subnet and the numbers, whatever else fits.
func TestAssignFullSubnet(t *testing.T) {
	r := newRecord(t, "10.20.0.0/24", api.Subnet{Name: "front", CIDR: "10.20.0.0/29"}, api.Subnet{Name: "back", CIDR: "10.20.0.128/25"})
	if err := r.Assign("db", []Want{{Member: "db/d/0", Subnet: "front"}, {Member: "db/d/1", Subnet: "front"}}, nil); err != nil {
		t.Fatal(err)
	}
	want := append(slots("w", 4), Want{Member: "web/api/0", Subnet: "back"})
	for i := range 4 {
		want[i].Subnet = "front"
	}
	err := r.Assign("web", want, nil)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "subnet front (10.20.0.0/29) has 3 free addresses of 5, and 4 more are asked for") {
		t.Fatalf("a full subnet: %v", err)
	}
	// An address an instance still holds is not free either.
	r = newRecord(t, "10.20.0.0/29")
	busy := map[netip.Addr]bool{netip.MustParseAddr("10.20.0.2"): true}
	if err := r.Assign("web", slots("w", 4), busy); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.Address("web/w/0"); a != "10.20.0.3" {
		t.Errorf("slot 0 got %s, want 10.20.0.3 (10.20.0.2 is busy)", a)
	}
	if err := r.Assign("more", []Want{{Member: "more/m/0"}}, busy); !errors.Is(err, api.ErrConflict) {
		t.Errorf("the last address is busy: %v, want a conflict", err)
	}
}

// TestAssignMovesToAnotherSubnet: a slot whose role moves to another
// subnet gets an address there; an unknown subnet is refused.
func TestAssignMovesToAnotherSubnet(t *testing.T) {
	r := newRecord(t, "10.20.0.0/16", api.Subnet{Name: "a", CIDR: "10.20.1.0/24"}, api.Subnet{Name: "b", CIDR: "10.20.2.0/24"})
	if err := r.Assign("web", []Want{{Member: "web/w/0"}}, nil); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.Address("web/w/0"); a != "10.20.1.2" {
		t.Errorf("in the first subnet: %s", a)
	}
	if err := r.Assign("web", []Want{{Member: "web/w/0", Subnet: "b"}}, nil); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.Address("web/w/0"); a != "10.20.2.2" {
		t.Errorf("moved to subnet b: %s", a)
	}
	if err := r.Assign("web", []Want{{Member: "web/w/0", Subnet: "c"}}, nil); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "network net has no subnet c (it has a, b)") {
		t.Errorf("unknown subnet: %v", err)
	}
}

// users is a Users of fixed answers.
type users map[string][]string

func (u users) NetworkUsers(tenant, network string) []string { return u[Key(tenant, network)] }

func openStore(t *testing.T) state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestNetworksPerTenant: names are per tenant and CIDRs may overlap
// across tenants, each network with its own VNI; a name taken in the
// tenant, or an invalid request, stores nothing; a network in use is not
// deleted; a deleted network's VNI is handed out again.
func TestNetworksPerTenant(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	u := users{}
	m := New(st, u)
	a, err := m.Create(ctx, api.DefaultTenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	if a.VNI != FirstVNI || len(a.Subnets) != 1 || a.Subnets[0] != (api.Subnet{Name: api.DefaultSubnet, CIDR: "10.20.0.0/16"}) {
		t.Errorf("created: %+v", a)
	}
	// Another tenant, same name and CIDR (its record must exist).
	if _, err := m.Create(ctx, "acme", api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/16"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("a tenant that does not exist: %v", err)
	}
	if _, err := st.Apply(ctx, []state.Op{{Kind: "tenants", Key: "acme", Value: []byte(`{"name":"acme"}`)}}); err != nil {
		t.Fatal(err)
	}
	b, err := m.Create(ctx, "acme", api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/16"})
	if err != nil {
		t.Fatalf("another tenant's network of the same name and CIDR: %v", err)
	}
	if b.VNI == a.VNI {
		t.Errorf("both networks have VNI %d", a.VNI)
	}
	if _, err := m.Create(ctx, "acme", api.CreateNetwork{Name: "net", CIDR: "10.30.0.0/16"}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("a name taken in the tenant: %v", err)
	}
	if _, err := m.Create(ctx, "acme", api.CreateNetwork{Name: "bad", CIDR: "10.20.0.1/16"}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "host bits") {
		t.Errorf("host bits: %v", err)
	}
	if got := m.List("acme"); len(got) != 1 || got[0].Tenant != "acme" {
		t.Errorf("acme's networks: %+v", got)
	}
	if got := m.List(api.AllTenants); len(got) != 2 {
		t.Errorf("every tenant's networks: %+v", got)
	}
	if _, err := m.Get("acme", "bad"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("the refused network: %v", err)
	}

	// In use: by a service naming it, or by addresses alone.
	u[Key("acme", "net")] = []string{"service web"}
	if err := m.Delete(ctx, "acme", "net"); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "in use by service web") {
		t.Errorf("delete while in use: %v", err)
	}
	delete(u, Key("acme", "net"))
	r, rev, _ := Lookup(st, "acme", "net")
	r.Members = map[string]string{"web/w/0": "10.20.0.2"}
	if _, err := st.Apply(ctx, []state.Op{{Kind: KindNetworks, Key: Key("acme", "net"), Check: true, Rev: rev}, r.Put()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "acme", "net"); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "1 addresses") {
		t.Errorf("delete while addresses are held: %v", err)
	}
	r.Members = nil
	if _, err := st.Apply(ctx, []state.Op{r.Put()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "acme", "net"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("acme", "net"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("deleted: %v", err)
	}
	if _, err := m.Get(api.DefaultTenant, "net"); err != nil {
		t.Errorf("the default tenant's network of the same name after acme's was deleted: %v", err)
	}
	c, err := m.Create(ctx, "acme", api.CreateNetwork{Name: "again", CIDR: "10.20.0.0/16"})
	if err != nil || c.VNI != b.VNI {
		t.Errorf("the freed VNI %d is handed out again: %+v, %v", b.VNI, c, err)
	}
}
