package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestVPNReachesATenantVM: acme's persistent VM on network net, booted
// before the network had a VPN gateway, gets the gateway's route to the
// peer's network from its guest agent once the gateway is made, without
// a reboot; the "on-premises" namespace (newVPNLab's WireGuard peer)
// reaches the VM's web server by its private address through the tunnel,
// and the VM reaches on premises back, from its private address. Neither
// reaches the default tenant's instances on its network with the same
// CIDR. The gateway deleted, the route goes from the guest too, and on
// premises reaches the VM no more. One VM boot.
func TestVPNReachesATenantVM(t *testing.T) {
	vmTest(t) // no link is cut: no netnsTest slot
	lab := newVPNLab(t, 2, vpnLabExtra{
		serverArgs: []string{"--no-storage=false"}, // the VM's disks live in the storage service
		beforeVPN: func(c *cluster) {
			c.mustWeft("image", "build", "tiny") // the default tenant's images serve every tenant
			c.mustWeft("--tenant", "acme", "vm", "create", "keeper", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi",
				"--network", "net", "--wait", "--timeout", "4m")
		},
	})
	c := lab.c
	vm := c.tenantVM("acme", "keeper")
	if vm.PrivateAddress == "" || vm.State != api.StateRunning {
		t.Fatalf("acme's VM: %+v", vm)
	}
	vmSh := func(script string) (string, int) {
		out, errOut, code := c.weft("--tenant", "acme", "vm", "exec", "keeper", "--", "/bin/sh", "-c", script)
		return out + errOut, code
	}
	// A mark in the guest's memory (tmpfs), gone if it rebooted.
	if out, code := vmSh("echo before > /tmp/weft-no-reboot"); code != 0 {
		t.Fatalf("mark the guest: exit %d, %q", code, out)
	}
	route := "192.168.77.0/24 via " + lab.vpn.Address
	c.waitFor("the VM's route "+route+" (the gateway made after it booted)", 60*time.Second, func() bool {
		out, _ := vmSh("ip -4 route show")
		return strings.Contains(out, route)
	})

	// On premises to the VM's web server, by its private address.
	if out, code := vmSh("mkdir -p /www && echo vm keeper here > /www/index.html && httpd -p 8081 -h /www"); code != 0 {
		t.Fatalf("httpd in the VM: exit %d, %q", code, out)
	}
	c.waitFor("on premises reaching the VM at "+vm.PrivateAddress+" through the VPN", 60*time.Second, func() bool {
		body, err := getIn(lab.opNs, vm.PrivateAddress, 8081)
		return err == nil && strings.Contains(body, "vm keeper here")
	})
	// The VM to on premises, from its private address.
	lab.answerOnPremises(t)
	if out, code := vmSh(askOnPremises("nc")); code != 0 || !strings.Contains(out, "you are "+vm.PrivateAddress+":") {
		t.Errorf("the VM reaching 192.168.77.1 on premises: exit %d, %q", code, out)
	}

	// Not the default tenant's: its instances on its own net, with the
	// same CIDR (an address may be one of acme's too, whose answer names
	// acme's instance).
	c.mustWeft("deploy", "-f", c.networkModel("default", "kind: worker", processHello), "--wait", "--timeout", "90s")
	mine := c.tenantInstances("")
	if len(mine) != 2 {
		t.Fatalf("the default tenant's instances: %+v", mine)
	}
	for _, ins := range mine {
		if body, err := getIn(lab.opNs, ins.PrivateAddress, 8080); err == nil && strings.Contains(body, ins.ID) {
			t.Errorf("on premises reached the default tenant's %s at %s: %q", ins.ID, ins.PrivateAddress, body)
		}
		script := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 %s 8080`, ins.PrivateAddress)
		if out, _ := vmSh(script); strings.Contains(out, ins.ID) {
			t.Errorf("acme's VM reached the default tenant's %s at %s: %q", ins.ID, ins.PrivateAddress, out)
		}
	}

	// The gateway deleted: its route goes from the guest, which stays up.
	c.mustWeft("--tenant", "acme", "network", "vpn", "delete", "net")
	c.waitFor("the VM's route "+route+" gone", 60*time.Second, func() bool {
		out, code := vmSh("ip -4 route show")
		return code == 0 && !strings.Contains(out, "192.168.77.0/24")
	})
	if body, err := getIn(lab.opNs, vm.PrivateAddress, 8081); err == nil {
		t.Errorf("on premises reached the VM after the gateway was deleted: %q", body)
	}
	if out, code := vmSh("cat /tmp/weft-no-reboot"); code != 0 || !strings.Contains(out, "before") {
		t.Errorf("the guest's mark after the gateway came and went: exit %d, %q; the VM rebooted", code, out)
	}
}

// tenantVM is tenant's VM name ("" for the default tenant).
func (c *cluster) tenantVM(tenant, name string) api.VM {
	c.t.Helper()
	var vm api.VM
	if err := json.Unmarshal([]byte(c.mustWeft(c.asTenant(tenant, "vm", "show", name, "-o", "json")...)), &vm); err != nil {
		c.t.Fatal(err)
	}
	return vm
}
