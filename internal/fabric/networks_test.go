package fabric

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/networks"
)

// addresses maps each live instance's slot of a tenant's service to its
// private address.
func (s *sim) addresses(tenant, service string) map[int]string {
	out := map[int]string{}
	for _, in := range s.c.Instances(s.ctx, tenant, service) {
		if in.Desired == api.DesiredRunning && !in.Draining {
			out[in.Slot] = in.PrivateAddress
		}
	}
	return out
}

func slotOf(s *sim, id string) int {
	for _, in := range s.c.Instances(s.ctx, api.AllTenants, "") {
		if in.ID == id {
			return in.Slot
		}
	}
	return -1
}

func onNetwork(spec api.ServiceSpec, network string) api.ServiceSpec {
	for i := range spec.Roles {
		spec.Roles[i].Network = network
	}
	return spec
}

// TestRolesOfEveryRuntimeJoinNetworks: by default roles of every runtime
// may name a network (vm ones too: the agents give VMs a tap on the
// network); a controller configured with fewer runtimes
// (Config.NetworkRuntimes) refuses the others at deploy, naming the
// runtime, and writes nothing.
func TestRolesOfEveryRuntimeJoinNetworks(t *testing.T) {
	s := newSim(t, 1)
	if _, err := networks.New(s.store, s.c).Create(s.ctx, api.DefaultTenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	for _, runtime := range []string{api.RuntimeContainer, api.RuntimeProcess, api.RuntimeVM} {
		spec := onNetwork(webSpec(1, "1"), "net")
		spec.Roles[0].Runtime = runtime
		if err := s.c.CheckNetworks(api.DefaultTenant, spec); err != nil {
			t.Errorf("a %s role on a network: %v", runtime, err)
		}
	}
	s.c.cfg.NetworkRuntimes = []string{api.RuntimeContainer, api.RuntimeProcess}
	before := s.store.Index()
	vm := onNetwork(webSpec(1, "1"), "net")
	vm.Roles[0].Runtime = api.RuntimeVM
	want := "roles[0].network: vm instances cannot join a virtual network yet: only container and process roles do"
	if err := s.c.CheckNetworks(api.DefaultTenant, vm); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Errorf("a vm role on a network of a controller without vm: %v, want %q", err, want)
	}
	if _, err := s.deployAs(api.DefaultTenant, vm); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("deploying a vm role on a network: %v, want refused", err)
	}
	if s.store.Index() != before {
		t.Fatal("a refused deploy wrote to the state")
	}
}

// TestSlotsKeepTheirAddresses: a role on a network gets an address per
// slot, kept by the slot through upgrades and relocation, the same in
// the assignments the nodes get; addresses of slots scaled away are
// freed, those of a deleted service too. A network or subnet the tenant
// does not have, or a full subnet, is refused before anything is written.
// Two tenants use the same CIDR.
func TestSlotsKeepTheirAddresses(t *testing.T) {
	s := newSim(t, 3)
	s.withTenants(api.CreateTenant{Name: "acme"})
	nets := networks.New(s.store, s.c)
	for _, tenant := range []string{api.DefaultTenant, "acme"} {
		if _, err := nets.Create(s.ctx, tenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/29"}); err != nil {
			t.Fatal(err)
		}
	}
	before := s.store.Index()
	for _, tc := range []struct {
		network, subnet string
		want            string
	}{
		{"nope", "", "roles[0].network: no network named nope"},
		{"net", "back", "roles[0].subnet: network net has no subnet back"},
	} {
		spec := onNetwork(webSpec(3, "1"), tc.network)
		spec.Roles[0].Subnet = tc.subnet
		if _, err := s.deployAs(api.DefaultTenant, spec); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("deploy on network %q subnet %q: %v, want %q", tc.network, tc.subnet, err, tc.want)
		}
	}
	// acme's network is acme's alone.
	if err := s.c.CheckNetworks("globex", onNetwork(webSpec(1, "1"), "net")); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("another tenant's network: %v", err)
	}
	if s.store.Index() != before {
		t.Fatal("a refused deploy wrote to the state")
	}

	s.deploy(onNetwork(webSpec(3, "1"), "net"))
	if _, err := s.deployAs("acme", onNetwork(webSpec(2, "1"), "net")); err != nil {
		t.Fatal(err)
	}
	s.settle(20, "3 healthy", func() bool { return s.healthyCurrent("hello", "web") == 3 })
	want := map[int]string{0: "10.20.0.2", 1: "10.20.0.3", 2: "10.20.0.4"}
	if diff := cmp.Diff(want, s.addresses(api.DefaultTenant, "hello")); diff != "" {
		t.Fatalf("addresses (-want +got):\n%s", diff)
	}
	s.settle(20, "acme's 2", func() bool { return len(s.addresses("acme", "hello")) == 2 })
	if diff := cmp.Diff(map[int]string{0: "10.20.0.2", 1: "10.20.0.3"}, s.addresses("acme", "hello")); diff != "" {
		t.Errorf("acme's addresses, on the same CIDR (-want +got):\n%s", diff)
	}

	// What a node is told: the attachment, and where the network's
	// members run.
	rec, _, _ := networks.Lookup(s.store, api.DefaultTenant, "net")
	found := false
	for name := range s.nodes {
		as, err := s.c.Assignments(s.ctx, name, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as.Instances {
			if a.Instance.Tenant != api.DefaultTenant {
				continue
			}
			found = true
			wantAtt := &api.NetworkAttachment{Tenant: api.DefaultTenant, Network: "net", VNI: rec.VNI, CIDR: "10.20.0.0/29",
				Subnet: api.DefaultSubnet, SubnetCIDR: "10.20.0.0/29", Gateway: "10.20.0.1", Address: want[a.Instance.Slot]}
			if diff := cmp.Diff(wantAtt, a.Network); diff != "" {
				t.Errorf("%s's attachment (-want +got):\n%s", a.Instance.ID, diff)
			}
		}
		for _, n := range as.Networks {
			if n.Tenant != api.DefaultTenant {
				continue
			}
			if len(n.Members) != 3 || n.VNI != rec.VNI {
				t.Errorf("%s is told of %d members of net (VNI %d), want 3 (VNI %d): %+v", name, len(n.Members), n.VNI, rec.VNI, n.Members)
			}
			for _, m := range n.Members {
				if m.Service != "hello" || m.Role != "web" || m.Host != "127.0.0.1" || m.Health != api.HealthHealthy || m.Address != want[slotOf(s, m.Instance)] {
					t.Errorf("%s is told of member %+v", name, m)
				}
			}
		}
	}
	if !found {
		t.Fatal("no node was assigned an instance")
	}

	// An upgrade keeps each slot's address.
	s.deploy(onNetwork(webSpec(3, "2"), "net"))
	s.settle(60, "upgraded", func() bool { return s.healthyCurrent("hello", "web") == 3 && len(s.records("hello")) == 3 })
	if diff := cmp.Diff(want, s.addresses(api.DefaultTenant, "hello")); diff != "" {
		t.Errorf("addresses after an upgrade (-want +got):\n%s", diff)
	}
	// So does relocation: node-1's instances start elsewhere.
	s.nodes["node-1"].dead = true
	s.clock.Advance(3 * s.c.cfg.HeartbeatTTL)
	s.settle(40, "relocated", func() bool {
		for _, in := range s.records("hello") {
			if in.Node == "node-1" {
				return false
			}
		}
		return s.healthyCurrent("hello", "web") == 3
	})
	if diff := cmp.Diff(want, s.addresses(api.DefaultTenant, "hello")); diff != "" {
		t.Errorf("addresses after relocation (-want +got):\n%s", diff)
	}

	// The subnet holds 5: 3 taken, 2 more are refused for 3.
	before = s.store.Index()
	other := onNetwork(webSpec(3, "1"), "net")
	other.Name = "other"
	_, err := s.deployAs(api.DefaultTenant, other)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "network net is full: subnet default (10.20.0.0/29) has 2 free addresses of 5, and 3 more are asked for") {
		t.Errorf("a full subnet: %v", err)
	}
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 6); !errors.Is(err, api.ErrConflict) {
		t.Errorf("scaling past a full subnet: %v", err)
	}
	if s.store.Index() != before {
		t.Error("a refused deploy wrote to the state")
	}

	// Scaled down, slot 2's address is free, but not handed out while
	// its instance still holds it.
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 2); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := networks.Lookup(s.store, api.DefaultTenant, "net"); rec.View().Used != 2 {
		t.Errorf("after scaling to 2, %d addresses used", rec.View().Used)
	}
	other.Roles[0].Instances = 1
	if _, err := s.deployAs(api.DefaultTenant, other); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := networks.Lookup(s.store, api.DefaultTenant, "net"); rec.Members["other/web/0"] == "10.20.0.4" {
		t.Errorf("slot 2's address went to another slot while its instance may still run: %v", rec.Members)
	}

	if err := nets.Delete(s.ctx, api.DefaultTenant, "net"); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "service hello (role web)") {
		t.Errorf("deleting a network in use: %v", err)
	}
	// Deleted services let their addresses go; then the network goes.
	for _, svc := range []string{"hello", "other"} {
		if _, err := s.c.DeleteService(s.ctx, api.DefaultTenant, svc, false); err != nil {
			t.Fatal(err)
		}
	}
	s.settle(40, "services gone", func() bool { return len(s.c.Services(s.ctx, api.DefaultTenant)) == 0 })
	if rec, _, _ := networks.Lookup(s.store, api.DefaultTenant, "net"); len(rec.Members) != 0 {
		t.Errorf("addresses of deleted services: %v", rec.Members)
	}
	if err := nets.Delete(s.ctx, api.DefaultTenant, "net"); err != nil {
		t.Errorf("deleting the unused network: %v", err)
	}
	if diff := cmp.Diff(map[int]string{0: "10.20.0.2", 1: "10.20.0.3"}, s.addresses("acme", "hello")); diff != "" {
		t.Errorf("acme's addresses after the default tenant's network went (-want +got):\n%s", diff)
	}
}

// TestVMKeepsItsAddress: a persistent VM keeps its address when its node
// is lost and it starts elsewhere, and while it is stopped (no other
// slot takes it then); it lets it go when it is deleted.
func TestVMKeepsItsAddress(t *testing.T) {
	s := newVMSim(t, 2)
	if _, err := networks.New(s.store, s.c).Create(s.ctx, api.DefaultTenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	s.deploy(onNetwork(webSpec(1, "1"), "net"))
	vm := api.ServiceSpec{Name: "db", UpgradeDomains: 1, Roles: []api.RoleSpec{{
		Name: api.VMRole, Kind: api.KindVM, Runtime: api.RuntimeVM, Image: "tiny", Instances: 1,
		Persistence: api.Persistent, Size: api.Size{CPU: 1, Memory: 256 << 20},
		Disks: []api.DiskSpec{{Name: "os", Size: 1 << 30, Blob: "db-os"}}, Network: "net",
	}}}
	s.deploy(vm)
	s.settle(20, "the VM running", func() bool { return s.healthyCurrent("db", api.VMRole) == 1 })
	if got := s.addresses(api.DefaultTenant, "db"); got[0] != "10.20.0.3" {
		t.Fatalf("the VM's address: %v", got)
	}
	home := s.records("db")[0].Node
	s.nodes[home].dead = true
	seen, _ := s.c.lastSeen(home)
	s.clock.Advance(persistentGrace(seen.ttl) + time.Second)
	s.settle(40, "the VM running elsewhere", func() bool {
		in := s.records("db")
		return len(in) == 1 && in[0].Node != home && s.healthyCurrent("db", api.VMRole) == 1
	})
	if got := s.addresses(api.DefaultTenant, "db"); got[0] != "10.20.0.3" {
		t.Errorf("the VM's address after it moved: %v", got)
	}
	s.nodes[home].dead = false

	// Stopped: no instance, and the address stays the VM's.
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "db", api.VMRole, 0); err != nil {
		t.Fatal(err)
	}
	s.settle(40, "the VM stopped", func() bool { return len(s.records("db")) == 0 })
	if a := s.c.SlotAddress(api.DefaultTenant, "net", "db", api.VMRole, 0); a != "10.20.0.3" {
		t.Errorf("the stopped VM's address: %q", a)
	}
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "hello", "web", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Scale(s.ctx, api.DefaultTenant, "db", api.VMRole, 1); err != nil {
		t.Fatal(err)
	}
	s.settle(40, "the VM started again", func() bool { return s.healthyCurrent("db", api.VMRole) == 1 })
	if got := s.addresses(api.DefaultTenant, "db"); got[0] != "10.20.0.3" {
		t.Errorf("the VM's address after a stop and start: %v (hello has %v)", got, s.addresses(api.DefaultTenant, "hello"))
	}
	if _, err := s.c.DeleteService(s.ctx, api.DefaultTenant, "db", false); err != nil {
		t.Fatal(err)
	}
	s.settle(40, "the VM deleted", func() bool { return len(s.c.Services(s.ctx, api.DefaultTenant)) == 1 })
	if a := s.c.SlotAddress(api.DefaultTenant, "net", "db", api.VMRole, 0); a != "" {
		t.Errorf("the deleted VM's address is still held: %q", a)
	}
}

// TestStoppedVMKeepsItsAddress: a VM's one slot holds its address while
// the VM is stopped (no instance), not only while it runs.
func TestStoppedVMKeepsItsAddress(t *testing.T) {
	vm := api.ServiceSpec{Name: "db", Roles: []api.RoleSpec{{Name: api.VMRole, Persistence: api.Persistent, Network: "net", Instances: 0}}}
	if got := wants(vm, "net"); len(got) != 1 || got[0].Member != "db/vm/0" {
		t.Errorf("a stopped VM wants %v, want its one slot", got)
	}
	svc := api.ServiceSpec{Name: "web", Roles: []api.RoleSpec{{Name: "w", Network: "net", Instances: 0}}}
	if got := wants(svc, "net"); len(got) != 0 {
		t.Errorf("a role scaled to 0 wants %v", got)
	}
}
