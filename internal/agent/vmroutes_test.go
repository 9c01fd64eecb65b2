package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver/fake"
)

// routerDriver is a vm driver whose guests' routes are recorded.
type routerDriver struct {
	*fake.Driver
	mu   sync.Mutex
	told []vpnRoutes
	fail error
	ch   chan struct{}
}

func (d *routerDriver) SetRoutes(ctx context.Context, id string, routes []netip.Prefix, via netip.Addr) error {
	d.mu.Lock()
	defer func() {
		d.mu.Unlock()
		d.ch <- struct{}{}
	}()
	d.told = append(d.told, vpnRoutes{to: routes, via: via})
	return d.fail
}

// TestVMsAreToldTheirNetworksVPNRoutes: a running VM on a network is
// told its network's VPN routes (none at first: a VM the agent adopted
// may hold a deleted gateway's), again only when they change (a gateway
// made, deleted), and again after a telling failed; a VM not running yet,
// a VM on no network and a process instance are told nothing.
func TestVMsAreToldTheirNetworksVPNRoutes(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler), figures: newFigures(), instances: map[string]*instance{},
		net: newNetPlane(slog.New(slog.DiscardHandler), "n1", "192.168.0.1", t.TempDir())}
	vms := &routerDriver{Driver: fake.New(api.RuntimeVM), ch: make(chan struct{}, 8)}
	on := func(id string, drv *fake.Driver, state string, network bool) {
		asg := assignment(id)
		if network {
			asg.Network = &api.NetworkAttachment{Network: "net", VNI: 7, CIDR: "10.20.0.0/24", Address: "10.20.0.5"}
		}
		in := &instance{a: a, id: id, asg: asg, state: state, drv: drv}
		if drv == vms.Driver {
			in.drv = vms
		}
		a.instances[id] = in
	}
	on("db-vm-0-a", vms.Driver, api.StateRunning, true)
	on("db-vm-0-b", vms.Driver, api.StateStarting, true)
	on("other-vm-0-c", vms.Driver, api.StateRunning, false)
	on("shop-web-0-d", fake.New(api.RuntimeProcess), api.StateRunning, true)

	ctx := context.Background()
	told := func(step string, want ...vpnRoutes) {
		t.Helper()
		for range want {
			<-vms.ch
		}
		// Its answer noted: the next pass sees it.
		eventually(t, step+": the telling noted", func() bool {
			a.routing.mu.Lock()
			defer a.routing.mu.Unlock()
			return len(a.routing.busy) == 0
		})
		vms.mu.Lock()
		defer vms.mu.Unlock()
		if !slices.EqualFunc(vms.told, want, vpnRoutes.equal) {
			t.Errorf("%s: told %v, want %v", step, vms.told, want)
		}
		vms.told = nil
	}
	a.routeVMs(ctx)
	told("first", vpnRoutes{})
	a.routeVMs(ctx)
	told("unchanged")

	gw := vpnRoutes{to: []netip.Prefix{netip.MustParsePrefix("192.168.77.0/24")}, via: netip.MustParseAddr("10.20.0.2")}
	a.net.mu.Lock()
	a.net.routes[7] = gw
	a.net.mu.Unlock()
	a.routeVMs(ctx)
	told("a gateway made", gw)

	vms.mu.Lock()
	vms.fail = errors.New("the guest agent did not answer")
	vms.mu.Unlock()
	a.net.mu.Lock()
	delete(a.net.routes, 7)
	a.net.mu.Unlock()
	a.routeVMs(ctx)
	told("the gateway deleted, the guest not answering", vpnRoutes{})
	vms.mu.Lock()
	vms.fail = nil
	vms.mu.Unlock()
	a.routeVMs(ctx)
	told("tried again", vpnRoutes{})
	a.routeVMs(ctx)
	told("then unchanged")

	// Stopped, then running again: it booted with its routes, and is
	// told them once more.
	a.instances["db-vm-0-a"].state = api.StateStopped
	a.routeVMs(ctx)
	told("stopped")
	a.instances["db-vm-0-a"].state = api.StateRunning
	a.routeVMs(ctx)
	told("running again", vpnRoutes{})
}
