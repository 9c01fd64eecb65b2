package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
)

// TestNetworkRuleCommands adds, lists (table and JSON) and removes a
// network's security rules through the real API; bad flags are usage
// errors (exit 2), bad values and taken names or priorities one-line
// errors naming the field (exit 1), and none of them stores anything.
func TestNetworkRuleCommands(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	addr, op := runningController(t)
	as, must := withToken(t, addr, op)
	must("network", "create", "net", "--cidr", "10.20.0.0/16")
	checkGolden(t, "network-rule-add.golden", must("network", "rule", "add", "net", "--name", "no-admin", "--priority", "100",
		"--action", "deny", "--protocol", "tcp", "--port", "8080-8090", "--source", "10.0.0.0/8"))
	must("network", "rule", "add", "net", "--name", "dns", "--priority", "110", "--action", "allow", "--protocol", "udp", "--port", "53")
	must("network", "rule", "add", "net", "--name", "rest", "--priority", "4096", "--action", "deny", "-o", "json")
	checkGolden(t, "network-rule-list.golden", must("network", "rule", "list", "net"))
	checkGolden(t, "network-rule-list.json.golden", must("network", "rule", "list", "net", "-o", "json"))

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"network", "rule", "add", "net", "--priority", "200", "--action", "deny"}, 2, "--name: the rule's name is required"},
		{[]string{"network", "rule", "add", "net", "--name", "x", "--action", "deny"}, 2, "--priority: the rule's priority is required, 100 to 4096"},
		{[]string{"network", "rule", "add", "net", "--name", "x", "--priority", "200"}, 2, "--action: allow or deny is required"},
		{[]string{"network", "rule", "add", "net", "--name", "x", "--priority", "200", "--action", "deny", "--source", "10.0.0.0/33"}, 1, `source: "10.0.0.0/33" is not an IPv4 CIDR`},
		{[]string{"network", "rule", "add", "net", "--name", "x", "--priority", "200", "--action", "deny", "--protocol", "tcp", "--port", "70000"}, 1, "port: 70000 is out of range: ports are 1 to 65535"},
		{[]string{"network", "rule", "add", "net", "--name", "x", "--priority", "200", "--action", "deny", "--protocol", "gre"}, 1, `protocol: "gre" is not a protocol (tcp, udp, icmp or any)`},
		{[]string{"network", "rule", "add", "net", "--name", "x", "--priority", "5000", "--action", "deny"}, 1, "priority: 5000 is out of range"},
		{[]string{"network", "rule", "add", "net", "--name", "dns", "--priority", "200", "--action", "deny"}, 1, "network net has a rule named dns"},
		{[]string{"network", "rule", "add", "net", "--name", "x", "--priority", "100", "--action", "deny"}, 1, "rule no-admin of network net has priority 100"},
		{[]string{"network", "rule", "add", "nope", "--name", "x", "--priority", "200", "--action", "deny"}, 1, "no network named nope"},
		{[]string{"network", "rule", "remove", "net", "nope"}, 1, "network net has no rule named nope"},
		{[]string{"network", "rule", "list"}, 2, "usage: weft network rule list NETWORK"},
	} {
		_, errOut, code := as(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") > 0 && tc.code == 1 {
			t.Errorf("weft %s: exit %d, %q; want exit %d and one line with %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
	}
	var rules []api.NetworkRule
	if err := json.Unmarshal([]byte(must("network", "rule", "list", "net", "-o", "json")), &rules); err != nil || len(rules) != 3 {
		t.Fatalf("after the refusals: %+v, %v; want the 3 rules", rules, err)
	}
	if out := must("network", "rule", "remove", "net", "dns"); out != "rule dns removed from network net\n" {
		t.Errorf("weft network rule remove: %q", out)
	}
	if out := must("network", "rule", "list", "net"); strings.Contains(out, "dns") || !strings.Contains(out, "no-admin") {
		t.Errorf("after removing dns:\n%s", out)
	}
}
