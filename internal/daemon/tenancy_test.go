package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/pki"
)

// TestTenantsSeeOnlyTheirOwn walks every tenant route as another tenant's
// owner, naming the first tenant's objects: each answers 404 (or, for
// lists, the caller's own objects only), never the first tenant's data, and
// the first tenant's objects are all still there afterwards. Names are per
// tenant: both tenants have a service called web.
func TestTenantsSeeOnlyTheirOwn(t *testing.T) {
	t.Parallel() // its own server; the longest tests here, run beside each other
	ctx := context.Background()
	c, creds := tlsServer(t)
	addr := "https://" + c.addr
	pool := mustPool(t, creds)
	as := func(token string) *client.Client {
		return client.New(addr).WithTLS(&tls.Config{RootCAs: pool}).WithToken(token)
	}
	operator := as(readToken(t, filepath.Join(creds, pki.AdminTokenFile)))
	owners := map[string]*client.Client{}
	tokenIDs := map[string]string{}
	for _, name := range []string{"acme", "globex"} {
		if _, err := operator.CreateTenant(ctx, api.CreateTenant{Name: name}); err != nil {
			t.Fatal(err)
		}
		tok, err := operator.CreateToken(ctx, api.CreateToken{Tenant: name, Role: api.AccessOwner})
		if err != nil {
			t.Fatal(err)
		}
		owners[name], tokenIDs[name] = as(tok.Token), tok.ID
	}
	acme, globex := owners["acme"], owners["globex"]

	pkg := uploadTinyPackage(t, acme)
	worker := func(name string) api.ServiceSpec {
		return api.ServiceSpec{Name: name, Roles: []api.RoleSpec{{Name: "w", Kind: "worker", Runtime: "process", Instances: 1,
			Package: pkg, Command: []string{"./app"}}}}
	}
	for _, cl := range []*client.Client{acme, globex} {
		if _, err := cl.Deploy(ctx, worker("web")); err != nil {
			t.Fatalf("both tenants may have a service named web: %v", err)
		}
	}
	if _, err := acme.Deploy(ctx, worker("shop")); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.CreateStorageAccount(ctx, "acmefiles"); err != nil {
		t.Fatal(err)
	}
	// An extension named like the service, so the walk names it too.
	if _, err := acme.PublishExtension(ctx, tinyExtension(t, "shop")); err != nil {
		t.Fatal(err)
	}
	// A network named like the service, so the walk names it too; globex
	// has one of the same name and CIDR.
	for _, cl := range []*client.Client{acme, globex} {
		if _, err := cl.CreateNetwork(ctx, api.CreateNetwork{Name: "shop", CIDR: "10.20.0.0/16"}); err != nil {
			t.Fatalf("both tenants may have a network named shop on 10.20.0.0/16: %v", err)
		}
	}
	if err := globex.DeleteNetwork(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	// A rule named like the service too, on acme's network.
	shopRule := api.NetworkRule{Name: "shop", Priority: 100, Action: api.RuleDeny, Protocol: "tcp", Port: "8080", Source: "10.0.0.0/8"}
	if _, err := acme.AddNetworkRule(ctx, "shop", shopRule); err != nil {
		t.Fatal(err)
	}
	// acme's network has a VPN gateway, which needs a ready node.
	cert, err := joinAs(t, addr, creds, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	asNode := client.New(addr).WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
	if _, err := asNode.RegisterNode(ctx, api.NodeRegistration{Name: "node-1", Address: "https://127.0.0.1:1", Host: "127.0.0.1",
		Capacity: api.Resources{CPU: 4, Memory: 4 << 30}, Runtimes: []string{"process"}}); err != nil {
		t.Fatal(err)
	}
	gateway, err := acme.CreateVPN(ctx, "shop", api.CreateVPN{PeerEndpoint: "203.0.113.7:51820", PeerCIDRs: []string{"192.168.0.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := acme.StorageAccountKeys(ctx, "acmefiles")
	if err != nil {
		t.Fatal(err)
	}
	var shopInstance string
	for deadline := time.Now().Add(10 * time.Second); shopInstance == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("acme's service has no instance")
		}
		if ins, _ := acme.Instances(ctx, "shop"); len(ins) > 0 {
			shopInstance = ins[0].ID
		}
	}
	if _, err := globex.CreateStorageAccount(ctx, "acmefiles"); !isCode(err, api.CodeConflict) {
		t.Errorf("another tenant's storage account name: %v, want a conflict (account names are global)", err)
	}

	// Every route a tenant may call, naming acme's objects, as globex.
	values := map[string]string{
		"{id}": shopInstance, "{key}": "key1", "{disk}": "os", "{extension}": "shop", "{rule}": "shop", "{digest}": "sha256:" + strings.Repeat("0", 64),
	}
	for _, rt := range access.Table {
		if rt.Rule != access.TenantRead && rt.Rule != access.TenantWrite && rt.Rule != access.TenantOwner {
			continue
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		if rt.Pattern == "DELETE /v1/sessions/current" {
			// It ends the caller's own session, naming no one else's
			// object: walked here, it revoked globex's token and every
			// later route answered 401 whatever it would have shown.
			continue
		}
		name := "shop"
		switch {
		case strings.HasPrefix(path, "/v1/storage/accounts/"):
			name = "acmefiles"
		case strings.HasPrefix(path, "/v1/tenants/"):
			name = "acme"
		case strings.HasPrefix(path, "/v1/tokens/"):
			values["{id}"] = tokenIDs["acme"]
		}
		path = strings.ReplaceAll(path, "{name}", name)
		for k, v := range values {
			path = strings.ReplaceAll(path, k, v)
		}
		values["{id}"] = shopInstance
		for _, query := range []string{"", "acme"} {
			status, body := call(t, globex, method, path, query)
			// whoami and status show no tenant's objects.
			names := strings.Contains(path, shopInstance) || strings.Contains(path, "acme") || strings.Contains(path, "shop") || strings.Contains(path, tokenIDs["acme"])
			if names || (query != "" && path != "/v1/whoami" && path != "/v1/status") {
				if status/100 == 2 {
					t.Errorf("%s %s (tenant %q) as globex: %d, want a refusal (404)", method, path, query, status)
				}
			}
			for _, secret := range []string{`"tenant": "acme"`, keys.Key1, shopInstance + `"`, `"service": "shop"`, gateway.PublicKey} {
				if strings.Contains(body, secret) {
					t.Errorf("%s %s (tenant %q) as globex answered acme's data (%s): %s", method, path, query, secret, body)
				}
			}
		}
	}

	// acme's objects are untouched.
	if svcs, err := acme.Services(ctx); err != nil || len(svcs) != 2 {
		t.Errorf("acme's services after globex's walk: %v %v", svcs, err)
	}
	if again, err := acme.StorageAccountKeys(ctx, "acmefiles"); err != nil || again.Key1 != keys.Key1 {
		t.Errorf("acme's account keys after globex's walk: %v", err)
	}
	if _, err := acme.Extension(ctx, "shop", ""); err != nil {
		t.Errorf("acme's extension after globex's walk: %v", err)
	}
	if n, err := acme.Network(ctx, "shop"); err != nil || n.Tenant != "acme" {
		t.Errorf("acme's network after globex's walk: %+v, %v", n, err)
	}
	if rules, err := acme.NetworkRules(ctx, "shop"); err != nil || len(rules) != 1 || rules[0] != shopRule {
		t.Errorf("acme's network rules after globex's walk: %+v, %v; want [%+v]", rules, err, shopRule)
	}
	if v, err := acme.VPN(ctx, "shop"); err != nil || v.PublicKey != gateway.PublicKey {
		t.Errorf("acme's VPN gateway after globex's walk: %+v, %v", v, err)
	}
	if _, err := acme.WhoAmI(ctx); err != nil {
		t.Errorf("acme's token after globex's walk: %v", err)
	}
	// The operator sees both, one tenant at a time or all at once.
	all, err := as(readToken(t, filepath.Join(creds, pki.AdminTokenFile))).WithTenant(api.AllTenants).Services(ctx)
	if err != nil || len(all) != 3 {
		t.Errorf("the operator's list of every tenant's services: %d, %v", len(all), err)
	}
}

// TestReaderChangesNothing: a reader's token reads its tenant's objects
// and may change none of them (403), nor read the storage keys.
func TestReaderChangesNothing(t *testing.T) {
	ctx := context.Background()
	c, creds := tlsServer(t)
	url := "https://" + c.addr
	pool := mustPool(t, creds)
	operator := client.New(url).WithTLS(&tls.Config{RootCAs: pool}).WithToken(readToken(t, filepath.Join(creds, pki.AdminTokenFile)))
	if _, err := operator.CreateTenant(ctx, api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	tok, err := operator.CreateToken(ctx, api.CreateToken{Tenant: "acme", Role: api.AccessReader})
	if err != nil {
		t.Fatal(err)
	}
	reader := client.New(url).WithTLS(&tls.Config{RootCAs: pool}).WithToken(tok.Token)
	if _, err := operator.WithTenant("acme").CreateStorageAccount(ctx, "acmefiles"); err != nil {
		t.Fatal(err)
	}
	if list, err := reader.StorageAccounts(ctx); err != nil || len(list) != 1 {
		t.Errorf("the reader's list: %v %v", list, err)
	}
	if _, err := reader.StorageAccountKeys(ctx, "acmefiles"); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader reading keys: %v, want forbidden", err)
	}
	if _, err := reader.CreateStorageAccount(ctx, "readerfiles"); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader creating an account: %v, want forbidden", err)
	}
	if _, err := reader.PublishExtension(ctx, tinyExtension(t, "hello")); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader publishing an extension: %v, want forbidden", err)
	}
	if _, err := reader.CreateNetwork(ctx, api.CreateNetwork{Name: "net", CIDR: "10.0.0.0/8"}); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader creating a network: %v, want forbidden", err)
	}
	if list, err := reader.Networks(ctx); err != nil || len(list) != 0 {
		t.Errorf("the reader's networks: %v %v", list, err)
	}
	// acme's network and its rule, made by the operator: the reader
	// reads the rules and changes none.
	if _, err := operator.WithTenant("acme").CreateNetwork(ctx, api.CreateNetwork{Name: "net", CIDR: "10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	rule := api.NetworkRule{Name: "web", Priority: 100, Action: api.RuleDeny, Protocol: "tcp", Port: "8080", Source: "any"}
	if _, err := operator.WithTenant("acme").AddNetworkRule(ctx, "net", rule); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.AddNetworkRule(ctx, "net", api.NetworkRule{Name: "open", Priority: 200, Action: api.RuleAllow}); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader adding a network rule: %v, want forbidden", err)
	}
	if err := reader.RemoveNetworkRule(ctx, "net", "web"); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader removing a network rule: %v, want forbidden", err)
	}
	if rules, err := reader.NetworkRules(ctx, "net"); err != nil || len(rules) != 1 || rules[0] != rule {
		t.Errorf("the reader's network rules: %+v, %v; want [%+v]", rules, err, rule)
	}
	if _, err := reader.CreateVPN(ctx, "net", api.CreateVPN{PeerEndpoint: "203.0.113.7:51820", PeerCIDRs: []string{"192.168.0.0/24"}}); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader creating a VPN gateway: %v, want forbidden", err)
	}
	if err := reader.DeleteVPN(ctx, "net"); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader deleting a VPN gateway: %v, want forbidden", err)
	}
	if list, err := reader.VPNs(ctx); err != nil || len(list) != 0 {
		t.Errorf("the reader's VPN gateways: %v %v", list, err)
	}
	if _, err := reader.CreateToken(ctx, api.CreateToken{Role: api.AccessOwner}); !isCode(err, api.CodeForbidden) {
		t.Errorf("a reader making itself an owner token: %v, want forbidden", err)
	}
}

func uploadTinyPackage(t *testing.T, cl *client.Client) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app"), []byte("#!/bin/sh\nsleep 1000\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pkgarchive.Pack(dir, &buf); err != nil {
		t.Fatal(err)
	}
	pkg, err := cl.UploadPackage(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	return pkg.Digest
}

// tinyExtension is an extension archive named name whose enable handler
// does nothing.
func tinyExtension(t *testing.T, name string) io.Reader {
	t.Helper()
	dir := t.TempDir()
	manifest := `{"name": "` + name + `", "version": "1.0", "handlers": {"enable": ["true"]}}`
	if err := os.WriteFile(filepath.Join(dir, api.ExtensionManifestFile), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pkgarchive.Pack(dir, &buf); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// call sends an empty JSON body (where there is one), naming tenant in
// ?tenant= when given, and returns the status and the answer.
func call(t *testing.T, cl *client.Client, method, path, tenant string) (int, string) {
	t.Helper()
	var body any
	if method == http.MethodPost || method == http.MethodPut {
		body = map[string]any{}
	}
	query := url.Values{}
	if tenant != "" {
		query.Set("tenant", tenant)
	}
	resp, err := cl.Stream(context.Background(), method, path, query, body)
	if err != nil {
		var e *api.Error
		if !errors.As(err, &e) {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return api.HTTPStatus(e), e.Message
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestAuditRecordsChanges: every change a person makes is in the audit
// log with who, from where, what and its answer; reads and the nodes' own
// traffic are not.
func TestAuditRecordsChanges(t *testing.T) {
	ctx := context.Background()
	c, creds := tlsServer(t)
	addr := "https://" + c.addr
	pool := mustPool(t, creds)
	operator := client.New(addr).WithTLS(&tls.Config{RootCAs: pool}).WithToken(readToken(t, filepath.Join(creds, pki.AdminTokenFile)))
	if _, err := operator.CreateTenant(ctx, api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	tok, err := operator.CreateToken(ctx, api.CreateToken{Tenant: "acme", Role: api.AccessContributor})
	if err != nil {
		t.Fatal(err)
	}
	acme := client.New(addr).WithTLS(&tls.Config{RootCAs: pool}).WithToken(tok.Token)
	if _, err := acme.CreateStorageAccount(ctx, "acmefiles"); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.CreateStorageAccount(ctx, "Bad_Name"); err == nil {
		t.Fatal("a bad account name was accepted")
	}
	if _, err := acme.StorageAccounts(ctx); err != nil {
		t.Fatal(err)
	}
	cert, err := joinAs(t, addr, creds, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	node := client.New(addr).WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
	if _, err := node.RegisterNode(ctx, api.NodeRegistration{Name: "node-1", Address: "https://127.0.0.1:1",
		Capacity: api.Resources{CPU: 1, Memory: 1 << 30}, Runtimes: []string{"process"}}); err != nil {
		t.Fatal(err)
	}
	entries, err := operator.Audit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if e.From == "" || e.Time.IsZero() {
			t.Errorf("entry without its origin or time: %+v", e)
		}
		got = append(got, fmt.Sprintf("%s %s %s %d", e.Who, e.Method, e.Path, e.Status))
	}
	want := []string{
		"the operator POST /v1/tenants 201",
		"the operator POST /v1/tokens 201",
		fmt.Sprintf("tenant acme's contributor token %s POST /v1/storage/accounts 201", tok.ID),
		fmt.Sprintf("tenant acme's contributor token %s POST /v1/storage/accounts 400", tok.ID),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := acme.Audit(ctx, nil); !isCode(err, api.CodeForbidden) {
		t.Errorf("a tenant reading the audit log: %v", err)
	}
}
