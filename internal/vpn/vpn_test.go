package vpn

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/tenants"
	"github.com/weftcloud/weft/internal/wireguard"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// cluster is the fabric's side: nodes with states, no busy addresses.
type cluster struct{ nodes []api.Node }

func (c *cluster) Nodes(context.Context) []api.Node                 { return c.nodes }
func (c *cluster) BusyAddresses(string, string) map[netip.Addr]bool { return nil }

func setup(t *testing.T) (*Manager, *cluster, state.Store) {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cl := &cluster{nodes: []api.Node{
		{Name: "n1", Host: "10.0.0.1", State: api.NodeReady},
		{Name: "n2", Host: "10.0.0.2", State: api.NodeReady},
	}}
	nm := networks.New(st, noUsers{})
	for _, tenant := range []string{"acme", "globex"} {
		if _, err := st.Apply(context.Background(), []state.Op{{Kind: tenants.KindTenants, Key: tenant, Value: []byte(`{"name":"` + tenant + `"}`)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := nm.Create(context.Background(), tenant, api.CreateNetwork{Name: "net", CIDR: "10.20.0.0/16"}); err != nil {
			t.Fatal(err)
		}
	}
	sealer, err := extensions.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return New(st, cl, sealer, nil), cl, st
}

type noUsers struct{}

func (noUsers) NetworkUsers(string, string) []string { return nil }

// TestCreateRefusesBadInput: each bad field is a 400 naming it, and
// nothing is stored.
func TestCreateRefusesBadInput(t *testing.T) {
	m, _, st := setup(t)
	ctx := context.Background()
	good := api.CreateVPN{PeerEndpoint: "203.0.113.7:51820", PeerCIDRs: []string{"192.168.0.0/24"}}
	for _, tc := range []struct {
		name string
		edit func(*api.CreateVPN)
		want string
	}{
		{"no port", func(r *api.CreateVPN) { r.PeerEndpoint = "203.0.113.7" }, `peerEndpoint: "203.0.113.7" is not HOST:PORT`},
		{"port zero", func(r *api.CreateVPN) { r.PeerEndpoint = "203.0.113.7:0" }, "the port must be a number from 1 to 65535"},
		{"bad host", func(r *api.CreateVPN) { r.PeerEndpoint = "bad_host!:51820" }, "is neither an IP address nor a host name"},
		{"no CIDR", func(r *api.CreateVPN) { r.PeerCIDRs = nil }, "peerCidrs: at least one CIDR"},
		{"not a CIDR", func(r *api.CreateVPN) { r.PeerCIDRs = []string{"192.168.0.0"} }, `peerCidrs[0]: "192.168.0.0" is not a CIDR`},
		{"host bits", func(r *api.CreateVPN) { r.PeerCIDRs = []string{"192.168.0.1/24"} }, "has host bits set: the network is 192.168.0.0/24"},
		{"IPv6", func(r *api.CreateVPN) { r.PeerCIDRs = []string{"fd00::/64"} }, "is not IPv4"},
		{"overlaps the network", func(r *api.CreateVPN) { r.PeerCIDRs = []string{"10.0.0.0/8"} },
			"peerCidrs[0]: 10.0.0.0/8 overlaps the virtual network's 10.20.0.0/16"},
		{"overlaps another", func(r *api.CreateVPN) { r.PeerCIDRs = []string{"192.168.0.0/16", "192.168.4.0/24"} },
			"peerCidrs[1]: 192.168.4.0/24 overlaps peerCidrs[0] (192.168.0.0/16)"},
		{"link-local", func(r *api.CreateVPN) { r.PeerCIDRs = []string{"169.254.0.0/24"} }, "overlaps 169.254.0.0/16"},
		{"bad key", func(r *api.CreateVPN) { r.PeerPublicKey = "abc" }, `peerPublicKey: "abc" is not a WireGuard public key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := good
			req.PeerCIDRs = append([]string(nil), good.PeerCIDRs...)
			tc.edit(&req)
			_, err := m.Create(ctx, "acme", "net", req)
			var e *api.Error
			if !asAPIError(err, &e) || e.Code != api.CodeInvalid || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("got %v, want a 400 saying %q", err, tc.want)
			}
			if got := st.List(KindVPNs, ""); len(got) != 0 {
				t.Fatalf("a refused create stored %d gateways", len(got))
			}
		})
	}
	if _, err := m.Create(ctx, "acme", "nope", good); !isCode(err, api.CodeNotFound) {
		t.Errorf("a network the tenant lacks: %v, want 404", err)
	}
}

func asAPIError(err error, e **api.Error) bool { return errors.As(err, e) }

func isCode(err error, code string) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Code == code
}

// TestCreateListDelete: a create places the gateway on the least loaded
// ready node with the first free port and a network address no instance
// gets, returns the peer's private key once, and the API never shows the
// gateway's; another tenant's network of the same name is apart; a
// second gateway on a network is refused; delete frees the address.
func TestCreateListDelete(t *testing.T) {
	m, _, st := setup(t)
	ctx := context.Background()
	v, err := m.Create(ctx, "acme", "net", api.CreateVPN{PeerEndpoint: "vpn.example.com:51820", PeerCIDRs: []string{"192.168.0.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Node != "n1" || v.Endpoint != "10.0.0.1:51820" || v.ListenPort != FirstPort || v.Address != "10.20.0.2" || v.NetworkCIDR != "10.20.0.0/16" {
		t.Errorf("placed: %+v", v)
	}
	// The peer's private key is in the create's answer, and matches the
	// public key the gateway is given.
	peerPrivate := configValue(t, v.PeerConfig, "PrivateKey")
	k, err := wireguard.ParseKey(peerPrivate)
	if err != nil || k.Public().String() != v.PeerPublicKey {
		t.Errorf("the peer's private key %q does not make its public key %s: %v", peerPrivate, v.PeerPublicKey, err)
	}
	// Stored sealed: the state holds no key in the clear, and the
	// servers' sealer opens it to the key of the public one.
	rec, _, _ := Lookup(st, "acme", "net")
	private, err := rec.OpenKey(m.sealer)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := wireguard.ParseKey(private)
	if err != nil || gw.Public().String() != v.PublicKey {
		t.Errorf("the stored private key does not make the public key: %v", err)
	}
	if e, _ := st.Get(KindVPNs, Key("acme", "net")); rec.SealedKey == "" || strings.Contains(string(e.Value), private) {
		t.Errorf("the state holds the gateway's key in the clear: %s", e.Value)
	}
	other := rec
	other.Network = "elsewhere"
	if _, err := other.OpenKey(m.sealer); err == nil {
		t.Error("a sealed key copied to another gateway opened")
	}
	// Shown again: neither private key.
	shown, err := m.Get("acme", "net")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(append(m.List("acme"), shown))
	for _, secret := range []string{peerPrivate, private} {
		if strings.Contains(string(data), secret) {
			t.Errorf("a private key is shown after the create: %s", data)
		}
	}
	if configValue(t, shown.PeerConfig, "PrivateKey") != keptAway {
		t.Errorf("shown peer config: %s", shown.PeerConfig)
	}
	// The address is the network's: the next slot does not get it.
	nrec, _, _ := networks.Lookup(st, "acme", "net")
	if err := nrec.Assign("web", []networks.Want{{Member: networks.Member("web", "w", 0)}}, nil); err != nil {
		t.Fatal(err)
	}
	if a, _ := nrec.Address(networks.Member("web", "w", 0)); a != "10.20.0.3" {
		t.Errorf("an instance slot after the gateway got %s, want 10.20.0.3", a)
	}
	if _, err := m.Create(ctx, "acme", "net", api.CreateVPN{PeerEndpoint: "198.51.100.1:51820", PeerCIDRs: []string{"192.168.1.0/24"}}); !isCode(err, api.CodeConflict) {
		t.Errorf("a second gateway: %v, want 409", err)
	}
	// globex's network of the same name: its own gateway, on the other
	// node (fewer gateways), with the next port and its own key.
	g, err := m.Create(ctx, "globex", "net", api.CreateVPN{PeerEndpoint: "198.51.100.1:51820", PeerCIDRs: []string{"192.168.0.0/24"},
		PeerPublicKey: v.PeerPublicKey})
	if err != nil {
		t.Fatal(err)
	}
	if g.Node != "n2" || g.ListenPort != FirstPort+1 || g.PublicKey == v.PublicKey || configValue(t, g.PeerConfig, "PrivateKey") != keptAway {
		t.Errorf("globex's gateway: %+v", g)
	}
	if got := m.List("acme"); len(got) != 1 || got[0].Tenant != "acme" {
		t.Errorf("acme's list: %+v", got)
	}
	if got := m.List(api.AllTenants); len(got) != 2 {
		t.Errorf("every tenant's list: %+v", got)
	}
	if err := m.Delete(ctx, "globex", "nope"); !isCode(err, api.CodeNotFound) {
		t.Errorf("deleting a missing network's gateway: %v", err)
	}
	if err := m.Delete(ctx, "acme", "net"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("acme", "net"); !isCode(err, api.CodeNotFound) {
		t.Errorf("a deleted gateway: %v", err)
	}
	nrec, _, _ = networks.Lookup(st, "acme", "net")
	if _, ok := nrec.Address(networks.VPNMember); ok {
		t.Error("the deleted gateway's address is still held")
	}
}

// TestNetworkDeleteNamesItsGateway: a network with a gateway is not
// deleted, and the refusal says how to delete the gateway.
func TestNetworkDeleteNamesItsGateway(t *testing.T) {
	m, _, st := setup(t)
	ctx := context.Background()
	if _, err := m.Create(ctx, "acme", "net", api.CreateVPN{PeerEndpoint: "203.0.113.7:51820", PeerCIDRs: []string{"192.168.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	err := networks.New(st, noUsers{}).Delete(ctx, "acme", "net")
	if !isCode(err, api.CodeConflict) || !strings.Contains(err.Error(), "weft network vpn delete net") {
		t.Errorf("deleting a network with a gateway: %v", err)
	}
}

// TestRehome: a gateway whose node is down moves to a ready node with
// its key, port and address; with no ready node it stays.
func TestRehome(t *testing.T) {
	m, cl, st := setup(t)
	ctx := context.Background()
	if _, err := m.Create(ctx, "acme", "net", api.CreateVPN{PeerEndpoint: "203.0.113.7:51820", PeerCIDRs: []string{"192.168.0.0/24"}}); err != nil {
		t.Fatal(err)
	}
	before, _, _ := Lookup(st, "acme", "net")
	cl.nodes[0].State = api.NodeDown
	m.rehome(ctx)
	after, _, _ := Lookup(st, "acme", "net")
	if after.Node != "n2" || after.Endpoint != "10.0.0.2:51820" {
		t.Errorf("after n1 went down: on %s at %s", after.Node, after.Endpoint)
	}
	before.Node, before.Endpoint = after.Node, after.Endpoint
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("moving changed more than the node (-before +after):\n%s", diff)
	}
	cl.nodes[1].State = api.NodeDraining
	m.rehome(ctx)
	if again, _, _ := Lookup(st, "acme", "net"); again.Node != "n2" {
		t.Errorf("with no ready node the gateway went to %s", again.Node)
	}
}

// TestPeerConfig is the peer's configuration, golden.
func TestPeerConfig(t *testing.T) {
	v := api.VPN{Tenant: "acme", Network: "net", NetworkCIDR: "10.20.0.0/16", PeerEndpoint: "203.0.113.7:51821",
		PeerCIDRs: []string{"192.168.0.0/24", "192.168.8.0/22"}, PublicKey: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
		Endpoint: "198.51.100.4:51820", Node: "node-1", CreatedAt: time.Unix(0, 0)}
	for _, tc := range []struct{ file, private string }{
		{"peer.conf", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="},
		{"peer-shown.conf", ""},
	} {
		got := PeerConfig(v, tc.private)
		path := filepath.Join("testdata", tc.file)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.file, diff)
		}
	}
}

// configValue reads KEY = VALUE from a wg-quick configuration.
func configValue(t *testing.T, conf, key string) string {
	t.Helper()
	for _, line := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(line, " = "); ok && k == key {
			return v
		}
	}
	t.Fatalf("no %s in\n%s", key, conf)
	return ""
}
