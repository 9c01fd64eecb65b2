package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
)

// scrubKeys replaces WireGuard keys (44 characters of base64) with K's.
func scrubKeys(out string) string {
	return regexp.MustCompile(`[A-Za-z0-9+/]{43}=`).ReplaceAllString(out, strings.Repeat("K", 43)+"=")
}

// TestVPNCommands makes, shows, lists and deletes a network's VPN gateway
// through the real API (a node registered to run it, no agent): the
// create prints the peer's configuration with its private key, show
// without it; bad flags and bad input are one-line errors naming the
// problem; another tenant sees none of it.
func TestVPNCommands(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	addr, op, ctl := realController(t)
	if _, err := ctl.RegisterNode(context.Background(), api.NodeRegistration{Name: "node-1", Address: "http://127.0.0.1:1", Host: "198.51.100.4",
		Capacity: api.Resources{CPU: 4, Memory: 4 << 30}, Runtimes: []string{"process"}}); err != nil {
		t.Fatal(err)
	}
	as := func(args ...string) (string, string, int) {
		t.Helper()
		return weft(t, addr, append([]string{"--token", op}, args...)...)
	}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := as(args...)
		if code != 0 {
			t.Fatalf("weft %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	must("network", "create", "net", "--cidr", "10.20.0.0/16")
	must("tenant", "create", "acme")
	must("network", "create", "net", "--cidr", "10.20.0.0/16", "--tenant", "acme")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"network", "vpn", "create", "net", "--peer-cidr", "192.168.0.0/24"}, 2, "--peer-endpoint: where the peer on premises listens is required"},
		{[]string{"network", "vpn", "create", "net", "--peer-endpoint", "203.0.113.7:51820"}, 2, "--peer-cidr: the network on premises is required"},
		{[]string{"network", "vpn", "create", "net", "--peer-endpoint", "203.0.113.7", "--peer-cidr", "192.168.0.0/24"}, 1, `peerEndpoint: "203.0.113.7" is not HOST:PORT`},
		{[]string{"network", "vpn", "create", "net", "--peer-endpoint", "203.0.113.7:51820", "--peer-cidr", "10.20.5.0/24"}, 1, "overlaps the virtual network's 10.20.0.0/16"},
		{[]string{"network", "vpn", "create", "net", "--peer-endpoint", "203.0.113.7:51820", "--peer-cidr", "nope"}, 1, `peerCidrs[0]: "nope" is not a CIDR`},
		{[]string{"network", "vpn", "create", "nope", "--peer-endpoint", "203.0.113.7:51820", "--peer-cidr", "192.168.0.0/24"}, 1, "no network named nope"},
		{[]string{"network", "vpn", "show", "net"}, 1, "network net has no VPN gateway (weft network vpn create net makes one)"},
	} {
		_, errOut, code := as(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("weft %s: exit %d, %q; want exit %d and one line with %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
	}
	created := must("network", "vpn", "create", "net", "--peer-endpoint", "203.0.113.7:51820", "--peer-cidr", "192.168.0.0/24", "--peer-cidr", "192.168.8.0/22")
	if !strings.Contains(created, "PrivateKey = ") || strings.Contains(created, "Weft does not keep it") {
		t.Errorf("the create does not print the peer's private key:\n%s", created)
	}
	checkGolden(t, "vpn-create.golden", scrub(scrubKeys(created)))
	shown := must("network", "vpn", "show", "net")
	if !strings.Contains(shown, "Weft does not keep it") {
		t.Errorf("show prints a private key:\n%s", shown)
	}
	checkGolden(t, "vpn-show.golden", scrub(scrubKeys(shown)))
	var list []api.VPN
	if err := json.Unmarshal([]byte(must("network", "vpn", "list", "-o", "json")), &list); err != nil || len(list) != 1 || list[0].Network != "net" || list[0].Endpoint != "198.51.100.4:51820" {
		t.Errorf("vpn list -o json: %+v, %v", list, err)
	}
	if out := must("--tenant", "acme", "network", "vpn", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("acme's list: %s", out)
	}
	if _, errOut, code := as("--tenant", "acme", "network", "vpn", "delete", "net"); code != 1 || !strings.Contains(errOut, "network net has no VPN gateway") {
		t.Errorf("acme deleting its network's (missing) gateway: exit %d, %q", code, errOut)
	}
	if out := must("network", "vpn", "delete", "net"); out != "VPN gateway of network net deleted\n" {
		t.Errorf("delete printed %q", out)
	}
	must("network", "delete", "net")
}
