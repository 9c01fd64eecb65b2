package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestVMOnVirtualNetwork: a persistent VM made with --network on a two-host
// overlay (network namespaces with real agents) gets a private address,
// shown by weft vm show, configured in the guest on the interface with the
// MAC the node gave it, and the network's DNS server in its resolv.conf.
// It reaches a process instance of the network by address and finds it by
// DNS name; the instance reaches the VM's web server by address and finds
// NAME.vm.internal. Live-migrated to the other host, the VM keeps its
// address and MAC, and both still reach each other; so after it was
// stopped and started on the other host (relocated).
func TestVMOnVirtualNetwork(t *testing.T) {
	vmTest(t) // no link is cut: no netnsTest slot
	c, h1, h2 := vmNetworkCluster(t)
	tool := c.instances("tools")[0]
	vm := c.vm("keeper")
	if vm.Network != "net" || !strings.HasPrefix(vm.PrivateAddress, "10.40.0.") || vm.PrivateAddress == tool.PrivateAddress {
		t.Fatalf("the VM's network %q, private address %q (the process instance has %s)", vm.Network, vm.PrivateAddress, tool.PrivateAddress)
	}
	if ins := c.instances("keeper"); len(ins) != 1 || ins[0].PrivateAddress != vm.PrivateAddress {
		t.Errorf("weft instances for the VM: %+v, want privateAddress %s", ins, vm.PrivateAddress)
	}
	// The guest's interface with the address, and its MAC.
	mac := c.guestMAC("keeper", vm.PrivateAddress)
	if got := c.mustWeft("vm", "exec", "keeper", "--", "cat", "/etc/resolv.conf"); !strings.Contains(got, "nameserver 10.40.0.1\n") {
		t.Errorf("the guest's resolv.conf: %q", got)
	}
	// The VM's web server, for the instance to reach.
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "mkdir -p /www && echo vm keeper here > /www/index.html && httpd -p 8081 -h /www")

	// Each check is asked until it holds or 30 s pass (the process
	// instance is a worker without a health probe: running before it
	// listens; a moved VM's host answers the network's names once its
	// agent has the members).
	check := func(what string, ask func() (bool, string)) {
		t.Helper()
		began := time.Now()
		deadline := began.Add(30 * time.Second)
		for {
			ok, detail := ask()
			if ok {
				t.Logf("%s: held after %v", what, time.Since(began).Round(time.Millisecond))
				return
			}
			t.Logf("%s: not yet after %v: %s", what, time.Since(began).Round(time.Millisecond), detail)
			if time.Now().After(deadline) {
				t.Errorf("%s: %s", what, detail)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	both := func(when string) {
		t.Helper()
		check(when+": the VM asking the process instance", func() (bool, string) {
			out, code := c.vmGet("keeper", tool.PrivateAddress, 8080)
			return code == 0 && strings.Contains(out, tool.ID), fmt.Sprintf("%s:8080: exit %d, %q", tool.PrivateAddress, code, out)
		})
		name := tool.ID + ".cli.tools.internal"
		check(when+": the VM resolving "+name, func() (bool, string) {
			got, errOut, _ := c.weft("vm", "exec", "keeper", "--", "nslookup", name)
			if strings.Contains(got, tool.PrivateAddress) {
				return true, ""
			}
			return false, fmt.Sprintf("%q %q; on its host: %s", got, errOut, c.gatewayDNS(c.vm("keeper").Node, name))
		})
		script := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 %s 8081`, vm.PrivateAddress)
		check(when+": the process instance asking the VM", func() (bool, string) {
			out, code := c.execIn("", tool.ID, "busybox", "sh", "-c", script)
			return code == 0 && strings.Contains(out, "vm keeper here"), fmt.Sprintf("%s:8081: exit %d, %q", vm.PrivateAddress, code, out)
		})
		check(when+": the process instance resolving keeper.vm.internal", func() (bool, string) {
			out, code := c.execIn("", tool.ID, "busybox", "nslookup", "keeper.vm.internal", "10.40.0.1")
			return code == 0 && strings.Contains(out, vm.PrivateAddress), fmt.Sprintf("exit %d, %q", code, out)
		})
	}
	both("on " + vm.Node)

	first := vm.Node
	c.mustWeft("vm", "migrate", "keeper")
	vm = c.vm("keeper")
	if vm.Node == first || vm.LastMigration == nil || vm.LastMigration.Error != "" {
		t.Fatalf("after the migration the VM is on %s (was %s), last migration %+v", vm.Node, first, vm.LastMigration)
	}
	if got := c.guestMAC("keeper", vm.PrivateAddress); got != mac {
		t.Errorf("the VM's MAC after the migration: %s, was %s", got, mac)
	}
	both("migrated to " + vm.Node)
	// The source took its tap off its bridge.
	old := map[string]*host{h1.name: h1, h2.name: h2}[first]
	c.waitFor("the source's tap gone", 30*time.Second, func() bool {
		out, err := exec.Command("ip", "-n", old.ns, "-o", "link", "show", "type", "tun").CombinedOutput()
		return err == nil && !strings.Contains(string(out), "weft endpoint "+vm.Instance)
	})
	if v := c.vm("keeper"); v.PrivateAddress != vm.PrivateAddress || v.State != api.StateRunning {
		t.Errorf("after the migration: %+v", v)
	}

	// Relocated: stopped, its host drained (the process instance moves
	// too, keeping its slot's address), and started on the other host,
	// booting anew there with the same address and MAC.
	c.mustWeft("vm", "stop", "keeper", "--wait")
	c.mustWeft("node", "drain", vm.Node)
	c.waitFor("the process instance moved off the drained host", 2*time.Minute, func() bool {
		ins := c.instances("tools")
		return len(ins) == 1 && ins[0].Node != vm.Node && ins[0].State == api.StateRunning
	})
	tool = c.instances("tools")[0]
	c.mustWeft("vm", "start", "keeper", "--wait")
	moved := c.vm("keeper")
	if moved.Node == vm.Node || moved.PrivateAddress != vm.PrivateAddress {
		t.Fatalf("after the relocation the VM is on %s (was %s) at %s (was %s)", moved.Node, vm.Node, moved.PrivateAddress, vm.PrivateAddress)
	}
	if got := c.guestMAC("keeper", vm.PrivateAddress); got != mac {
		t.Errorf("the VM's MAC after the relocation: %s, was %s", got, mac)
	}
	c.mustWeft("vm", "exec", "keeper", "--", "/bin/sh", "-c", "mkdir -p /www && echo vm keeper here > /www/index.html && httpd -p 8081 -h /www")
	both("relocated to " + moved.Node)
}

// vmNetworkCluster starts a server and two agent hosts (vnet1, vnet2),
// with network net (10.40.0.0/24), service tools (toolsModel) on it, and
// the persistent VM keeper on it too, from image tiny.
func vmNetworkCluster(t testing.TB) (c *cluster, h1, h2 *host) {
	requireQEMU(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("the test needs nsenter (apt-get install util-linux)")
	}
	n := newNetwork(t)
	srv := n.addHost("s")
	h1, h2 = n.addHost("vnet1"), n.addHost("vnet2")
	c = newHostServers(t, n, []*host{srv}, "--no-storage=false") // the VM's disks live in the storage service
	t.Cleanup(func() { c.removeGatewayNamespaces(h1.name, h2.name) })
	c.startContainerAgents(h1, h2)
	c.mustWeft("network", "create", "net", "--cidr", "10.40.0.0/24")
	// A process instance of the network serves its name on 8080.
	c.mustWeft("deploy", "-f", c.toolsModel("net"), "--wait", "--timeout", "60s")
	c.mustWeft("image", "build", "tiny")
	c.mustWeft("vm", "create", "keeper", "--image", "tiny", "--memory", "256Mi", "--disk", "512Mi", "--network", "net", "--wait")
	return c, h1, h2
}

// guestMAC is the MAC of the guest's interface that has addr, failing the
// test when none has.
func (c *cluster) guestMAC(vm, addr string) string {
	c.t.Helper()
	out := c.mustWeft("vm", "exec", vm, "--", "ip", "-o", "-4", "addr", "show")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], addr+"/") {
			mac := strings.TrimSpace(c.mustWeft("vm", "exec", vm, "--", "cat", "/sys/class/net/"+f[1]+"/address"))
			if !strings.HasPrefix(mac, "02:") {
				c.t.Errorf("the guest's %s has MAC %s, not the node's 02:...", f[1], mac)
			}
			return mac
		}
	}
	c.t.Fatalf("no interface of the guest has %s: %s", addr, out)
	return ""
}

// vmGet asks for / at addr:port from inside the VM (busybox nc) and
// returns the answer and the exit code.
func (c *cluster) vmGet(vm, addr string, port int) (string, int) {
	c.t.Helper()
	out, errOut, code := c.weft("vm", "exec", vm, "--", "/bin/sh", "-c",
		fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 %s %d`, addr, port))
	return out + errOut, code
}

// toolsModel writes the model of service tools: one process instance of
// hello (which answers on 8080 with its instance ID) on network.
func (c *cluster) toolsModel(network string) string {
	c.t.Helper()
	dir := filepath.Join(c.dir, "models", "tools")
	if err := os.MkdirAll(filepath.Join(dir, "package"), 0o755); err != nil {
		c.t.Fatal(err)
	}
	copyExecutable(c.t, helloBin, filepath.Join(dir, "package", "hello"))
	return writeFile(c.t, filepath.Join(dir, "tools.yaml"), `name: tools
roles:
  - name: cli
    kind: worker
    runtime: process
    package: ./package
    command: [./hello]
    instances: 1
    size: {cpu: 0.1, memory: 64Mi}
    network: `+network+"\n")
}

// gatewayDNS says what the DNS server of node's gateway namespace (of the
// one network on it) answers for name when asked from that namespace, and
// the namespace's neighbours: where a VM's question went unanswered.
func (c *cluster) gatewayDNS(node, name string) string {
	matches, _ := filepath.Glob("/run/netns/" + c.gatewayNetnsPrefix(node) + "*")
	if len(matches) != 1 {
		return fmt.Sprintf("%d gateway namespaces", len(matches))
	}
	ns := filepath.Base(matches[0])
	answer, _ := exec.Command("ip", "netns", "exec", ns, "busybox", "nslookup", name, "10.40.0.1").CombinedOutput()
	neigh, _ := exec.Command("ip", "-n", ns, "neigh", "show").CombinedOutput()
	return fmt.Sprintf("nslookup: %q; neighbours: %q", answer, neigh)
}
