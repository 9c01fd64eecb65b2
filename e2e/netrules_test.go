package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestNetworkRulesAndProcessDNS: a process service on a network, one
// instance on each of two hosts (network namespaces with real agents),
// each serving its web port (hello) and port 9090 (busybox nc). A deny
// rule for the web port from the network's range (weft network rule add)
// stops new connections from one instance to the other's web port, on
// both hosts at once and with the instances running on, while 9090 still
// answers and the published endpoint still answers through the load
// balancer; removing the rule lets them through again. The process
// instances resolve names through the network's DNS server as the
// container instances do: /etc/resolv.conf in them (and in what weft exec
// runs there) names it, and glibc's resolver (getent) finds
// INSTANCE.ROLE.SERVICE.internal, ROLE.SERVICE.internal and, through the
// search domain, ROLE.
func TestNetworkRulesAndProcessDNS(t *testing.T) {
	parallel(t) // no link is cut: no netnsTest slot
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("the test needs nsenter (apt-get install util-linux)")
	}
	for _, tool := range []string{"busybox", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the test needs %s in the instances (apt-get install busybox libc-bin)", tool)
		}
	}
	n := newNetwork(t)
	// Node names of this test's own: an agent removes the gateway
	// namespaces named after its node that it does not carry.
	h1, h2 := n.addHost("nr1"), n.addHost("nr2")
	c := newHostServers(t, n, []*host{h1})
	t.Cleanup(func() { c.removeGatewayNamespaces(h1.name, h2.name) })
	c.startContainerAgents(h1, h2)
	c.mustWeft("network", "create", "net", "--cidr", "10.31.0.0/24")
	port := freePort(t)
	model := c.networkModel("rules", fmt.Sprintf(`kind: web
    endpoints:
      - {name: http, protocol: http, port: %d}
    health:
      http: {path: /healthz, endpoint: http}
      interval: 250ms
      timeout: 1s
      failures: 2`, port), `runtime: process
    package: ./package
    command: [sh, -c, "busybox nc -ll -p 9090 -e /bin/echo nine & exec ./hello"]`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "90s")
	ins := c.tenantInstances("")
	if len(ins) != 2 || ins[0].Node == ins[1].Node {
		t.Fatalf("want one instance on each host: %+v", ins)
	}
	a, b := ins[0], ins[1]
	web := b.Ports["http"]
	// ask connects from a to b's addr:port (busybox nc, five seconds at
	// most) and reports whether b answered with want.
	ask := func(port int, want string) bool {
		out, code := c.execIn("", a.ID, "sh", "-c",
			fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 %s %d`, b.PrivateAddress, port))
		return code == 0 && strings.Contains(out, want)
	}
	c.waitFor("a reaching b's web port across hosts", 30*time.Second, func() bool { return ask(web, b.ID) })
	c.waitFor("a reaching b's port 9090", 30*time.Second, func() bool { return ask(9090, "nine") })

	rule := []string{"network", "rule", "add", "net", "--name", "no-web", "--priority", "100", "--action", "deny",
		"--protocol", "tcp", "--port", strconv.Itoa(web), "--source", "10.31.0.0/24", "-o", "json"}
	var added api.NetworkRule
	if err := json.Unmarshal([]byte(c.mustWeft(rule...)), &added); err != nil || added.Port != strconv.Itoa(web) || added.Action != api.RuleDeny {
		t.Fatalf("weft %s: %+v, %v", strings.Join(rule, " "), added, err)
	}
	c.waitFor("the rule stopping a's connections to b's web port", 60*time.Second, func() bool { return !ask(web, b.ID) })
	if !ask(9090, "nine") {
		t.Error("with the web port denied, port 9090 no longer answers")
	}
	if body := get(t, fmt.Sprintf("http://%s:%d/", h1.ip, port)); !strings.Contains(body, "shop-web-") {
		t.Errorf("the published endpoint through the load balancer with the rule: %q", body)
	}
	c.mustWeft("network", "rule", "remove", "net", "no-web")
	c.waitFor("a reaching b's web port again once the rule is removed", 60*time.Second, func() bool { return ask(web, b.ID) })
	// The instances ran on through both changes.
	for _, in := range c.tenantInstances("") {
		if (in.ID != a.ID || in.Restarts != a.Restarts) && (in.ID != b.ID || in.Restarts != b.Restarts) {
			t.Errorf("an instance was restarted or replaced while the rules changed: %+v", in)
		}
	}

	// Names, through the network's DNS server in the instances'
	// /etc/resolv.conf.
	if out, code := c.execIn("", a.ID, "cat", "/etc/resolv.conf"); code != 0 || !strings.Contains(out, "nameserver 10.31.0.1") {
		t.Errorf("a process instance's /etc/resolv.conf: exit %d, %q", code, out)
	}
	getent := func(name string) []string {
		out, _ := c.execIn("", a.ID, "getent", "ahostsv4", name)
		var addrs []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[1] == "STREAM" {
				addrs = append(addrs, f[0])
			}
		}
		slices.Sort(addrs)
		return addrs
	}
	if got := getent(b.ID + ".web.shop.internal"); !slices.Equal(got, []string{b.PrivateAddress}) {
		t.Errorf("%s.web.shop.internal from the process instance %s: %v, want [%s]", b.ID, a.ID, got, b.PrivateAddress)
	}
	both := []string{a.PrivateAddress, b.PrivateAddress}
	slices.Sort(both)
	c.waitFor("web.shop.internal naming both healthy instances", 30*time.Second, func() bool {
		return slices.Equal(getent("web.shop.internal"), both)
	})
	if got := getent("web"); !slices.Equal(got, both) {
		t.Errorf("web, through the search domain shop.internal: %v, want %v", got, both)
	}
}
