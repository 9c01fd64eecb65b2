package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
)

// TestNetworkCommands makes, shows and deletes networks through the real
// API; a model on a network the tenant lacks is refused and stores
// nothing, one on a network gets an address per instance (weft instances
// -o json), and the network in use is not deleted. Another tenant has a
// network of the same name and CIDR.
func TestNetworkCommands(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	addr, op := runningController(t)
	as, must := withToken(t, addr, op)
	checkGolden(t, "network-create.golden", scrub(must("network", "create", "net", "--cidr", "10.20.0.0/16",
		"--subnet", "front=10.20.1.0/24", "--subnet", "back=10.20.2.0/24")))
	checkGolden(t, "network-create.json.golden", scrub(must("network", "create", "spare", "--cidr", "10.30.0.0/24", "-o", "json")))
	must("tenant", "create", "acme")
	must("network", "create", "net", "--cidr", "10.20.0.0/16", "--tenant", "acme")

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"network", "create", "x"}, 2, "--cidr: the network's address range is required"},
		{[]string{"network", "create", "x", "--cidr", "10.0.0.0/8", "--subnet", "a:10.0.0.0/16"}, 2, `--subnet "a:10.0.0.0/16": want NAME=CIDR`},
		{[]string{"network", "create", "x", "--cidr", "10.0.0.1/8"}, 1, "cidr: 10.0.0.1/8 has host bits set: the network is 10.0.0.0/8"},
		{[]string{"network", "create", "x", "--cidr", "10.0.0.0/16", "--subnet", "a=10.1.0.0/24"}, 1, "10.1.0.0/24 is not inside the network's 10.0.0.0/16"},
		{[]string{"network", "create", "net", "--cidr", "10.40.0.0/16"}, 1, "a network named net exists"},
		{[]string{"network", "show", "nope"}, 1, "no network named nope"},
		{[]string{"vm", "create", "db", "--image", "nope", "--network", "nope"}, 1, "network: no network named nope"},
	} {
		_, errOut, code := as(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("weft %s: exit %d, %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
	}

	// A model on a network the tenant does not have stores nothing.
	model := func(network, subnet string) string {
		file := writeModel(t)
		data, _ := os.ReadFile(file)
		data = append(data, []byte("    network: "+network+"\n")...)
		if subnet != "" {
			data = append(data, []byte("    subnet: "+subnet+"\n")...)
		}
		os.WriteFile(file, data, 0o644)
		return file
	}
	if _, errOut, code := as("deploy", "-f", model("nope", "")); code != 1 || !strings.Contains(errOut, "roles[0].network: no network named nope (weft network create nope --cidr CIDR makes one)") {
		t.Errorf("deploy on an unknown network: exit %d, %s", code, errOut)
	}
	if _, errOut, code := as("deploy", "-f", model("net", "middle")); code != 1 || !strings.Contains(errOut, "roles[0].subnet: network net has no subnet middle") {
		t.Errorf("deploy on an unknown subnet: exit %d, %s", code, errOut)
	}
	if out := must("services"); strings.Contains(out, "hello") {
		t.Errorf("a refused model was stored:\n%s", out)
	}

	must("deploy", "-f", model("net", "back"))
	var ins []api.Instance
	for deadline := time.Now().Add(10 * time.Second); len(ins) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("instances: %+v", ins)
		}
		ins = nil
		if err := json.Unmarshal([]byte(must("instances", "-o", "json")), &ins); err != nil {
			t.Fatal(err)
		}
	}
	got := map[int]string{}
	for _, in := range ins {
		got[in.Slot] = in.PrivateAddress
	}
	if got[0] != "10.20.2.2" || got[1] != "10.20.2.3" {
		t.Errorf("instances' private addresses in subnet back: %v", got)
	}

	checkGolden(t, "network-show.golden", scrub(must("network", "show", "net")))
	checkGolden(t, "network-list.golden", scrub(must("network", "list")))
	checkGolden(t, "network-list-all.golden", scrub(must("network", "list", "-A")))
	checkGolden(t, "network-list.json.golden", scrub(must("network", "list", "-o", "json")))

	if _, errOut, code := as("network", "delete", "net"); code != 1 || !strings.Contains(errOut, "network net is in use by service hello (role web)") {
		t.Errorf("deleting a network in use: exit %d, %s", code, errOut)
	}
	if out := must("network", "delete", "spare"); out != "network spare deleted\n" {
		t.Errorf("weft network delete: %q", out)
	}
	if _, errOut, code := as("network", "show", "spare"); code != 1 || !strings.Contains(errOut, "no network named spare") {
		t.Errorf("a deleted network: exit %d, %s", code, errOut)
	}
}
