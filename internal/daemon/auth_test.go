package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/pki"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tlsServer starts a controller alone on the credentials of tls init, and
// returns it with the credentials' folder.
func tlsServer(t *testing.T) (*controller, string) {
	t.Helper()
	creds := filepath.Join(t.TempDir(), "tls")
	if err := pki.Init(creds, nil); err != nil {
		t.Fatal(err)
	}
	c, err := startController(context.Background(), ServerConfig{Data: t.TempDir(), Listen: "127.0.0.1:0", Name: "s1",
		StorageDisabled: true, TLSDir: creds, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, creds
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// joinAs trades the join token for node name's certificate, as an agent
// does, and returns it.
func joinAs(t *testing.T, url, creds, name string) (tls.Certificate, error) {
	t.Helper()
	pool, err := pki.LoadCA(filepath.Join(creds, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, csrPEM, err := pki.NewAgentRequest(name)
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.New(url).WithTLS(&tls.Config{RootCAs: pool}).WithToken(readToken(t, filepath.Join(creds, pki.JoinTokenFile))).
		JoinCluster(context.Background(), api.AgentCertificateRequest{Name: name, CSR: string(csrPEM)})
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair([]byte(got.Certificate), keyPEM)
}

// caller is one identity and how it calls the API.
type caller struct {
	name      string
	principal access.Principal
	client    *http.Client
	token     string
}

// TestEveryRouteRefusesTheWrongIdentity walks access.Table and calls every
// route as every identity its rule does not admit: each answers 401
// (no credentials) or 403, before any handler runs. A route mounted
// without a rule cannot exist: the controller would not start.
func TestEveryRouteRefusesTheWrongIdentity(t *testing.T) {
	t.Parallel() // its own server; the longest tests here, run beside each other
	c, creds := tlsServer(t)
	url := "https://" + c.addr
	pool, err := pki.LoadCA(filepath.Join(creds, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}
	node1, err := joinAs(t, url, creds, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	server, err := tls.LoadX509KeyPair(filepath.Join(creds, pki.ServerFile), filepath.Join(creds, pki.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	// A node acts for itself only. (The walk below revokes node-1:
	// the operator may.)
	asNode1 := client.New(url).WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{node1}})
	if _, err := asNode1.Heartbeat(context.Background(), "node-2", api.Heartbeat{}); !isCode(err, api.CodeForbidden) {
		t.Errorf("node-1's heartbeat for node-2: %v, want forbidden", err)
	}
	if _, err := asNode1.Peers(context.Background(), "node-2", "x"); !isCode(err, api.CodeForbidden) {
		t.Errorf("node-1 reading the peers of node-2's instance: %v, want forbidden", err)
	}
	if _, err := asNode1.Heartbeat(context.Background(), "node-1", api.Heartbeat{}); err != nil {
		t.Errorf("node-1's own heartbeat: %v", err)
	}
	admin := readToken(t, filepath.Join(creds, pki.AdminTokenFile))
	callers := []caller{
		{"anonymous", access.Principal{}, withCert(), ""},
		{"node-1's certificate", access.Principal{Role: access.Node, Name: "node-1"}, withCert(node1), ""},
		{"the join token", access.Principal{Role: access.Joiner}, withCert(), readToken(t, filepath.Join(creds, pki.JoinTokenFile))},
		{"the admin token", access.Principal{Role: access.Operator}, withCert(), admin},
		{"the servers' certificate", access.Principal{Role: access.Server}, withCert(server), ""},
	}
	// Tokens of weft token create: an operator's, and each access a
	// tenant's token gives.
	operator := client.New(url).WithTLS(&tls.Config{RootCAs: pool}).WithToken(admin)
	if _, err := operator.CreateTenant(context.Background(), api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	for _, grant := range []struct{ tenant, role string }{{"", api.AccessOperator}, {"acme", api.AccessOwner}, {"acme", api.AccessContributor}, {"acme", api.AccessReader}} {
		tok, err := operator.CreateToken(context.Background(), api.CreateToken{Tenant: grant.tenant, Role: grant.role})
		if err != nil {
			t.Fatal(err)
		}
		p := access.Principal{Role: access.Tenant, Name: tok.ID, Tenant: grant.tenant, Access: grant.role}
		if grant.role == api.AccessOperator {
			p = access.Principal{Role: access.Operator, Name: tok.ID}
		}
		callers = append(callers, caller{"a " + grant.role + " token", p, withCert(), tok.Token})
	}
	// Ending a session revokes the token that calls it: last.
	routes := slices.Clone(access.Table)
	slices.SortStableFunc(routes, func(a, b access.Route) int {
		return cmp.Compare(boolInt(a.Pattern == "DELETE /v1/sessions/current"), boolInt(b.Pattern == "DELETE /v1/sessions/current"))
	})
	for _, rt := range routes {
		method, path := routeRequest(rt.Pattern)
		for _, cl := range callers {
			// node-1 acts on node-1: refused only where the rule
			// refuses nodes; on node-2 it is refused everywhere but
			// Nodes routes.
			want := access.Check(rt.Rule, cl.principal, "node-1")
			req, _ := http.NewRequest(method, url+path, strings.NewReader("{}"))
			if cl.token != "" {
				req.Header.Set("Authorization", "Bearer "+cl.token)
			}
			resp, err := cl.client.Do(req)
			if err != nil {
				t.Fatalf("%s %s as %s: %v", method, path, cl.name, err)
			}
			resp.Body.Close()
			refused := resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
			switch {
			case want != nil && !refused:
				t.Errorf("%s %s (%s) as %s: %s, want 401 or 403", method, path, rt.Rule, cl.name, resp.Status)
			case want == nil && refused:
				t.Errorf("%s %s (%s) as %s: %s, want it let through", method, path, rt.Rule, cl.name, resp.Status)
			}
			var denied *access.Denied
			if errors.As(want, &denied) && denied.Unauthenticated && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s as %s: %s, want 401", method, path, cl.name, resp.Status)
			}
		}
	}

}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// routeRequest is a request that matches pattern.
func routeRequest(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodGet, pattern
	}
	for wildcard, value := range map[string]string{
		"{name}": "node-1", "{digest}": "sha256:" + strings.Repeat("0", 64), "{id}": "x", "{key}": "key1", "{disk}": "d1", "{extension}": "x", "{rule}": "r1",
		"{instance}": "x",
	} {
		path = strings.ReplaceAll(path, wildcard, value)
	}
	if strings.HasSuffix(path, "/") {
		path += "x"
	}
	return method, path
}

func isCode(err error, code string) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Code == code
}

// TestJoinTokenSignsOnceForANewName: the join token gets a certificate
// for a valid name that no live node holds, registers the name (so the
// certificate can be revoked), and refuses impersonation and bad names.
func TestJoinTokenSignsOnceForANewName(t *testing.T) {
	c, creds := tlsServer(t)
	url := "https://" + c.addr
	if _, err := joinAs(t, url, creds, "n1"); err != nil {
		t.Fatal(err)
	}
	operator := client.New(url).WithTLS(&tls.Config{RootCAs: mustPool(t, creds)}).WithToken(readToken(t, filepath.Join(creds, pki.AdminTokenFile)))
	if _, err := operator.Node(context.Background(), "n1"); err != nil {
		t.Errorf("the joined name is not registered: %v", err)
	}
	cert, err := joinAs(t, url, creds, "n1")
	if err != nil {
		t.Fatalf("n1 registered but never up may join again: %v", err)
	}
	// n1 comes up: its name is its own.
	asN1 := client.New(url).WithTLS(&tls.Config{RootCAs: mustPool(t, creds), Certificates: []tls.Certificate{cert}})
	if _, err := asN1.RegisterNode(context.Background(), api.NodeRegistration{Name: "n1", Address: "https://127.0.0.1:1", Capacity: api.Resources{CPU: 1, Memory: 1 << 30}}); err != nil {
		t.Fatal(err)
	}
	if _, err := joinAs(t, url, creds, "n1"); !isCode(err, api.CodeConflict) {
		t.Errorf("the join token for a live node's name: %v, want conflict", err)
	}
	for _, bad := range []string{"weft server", "n2\nCN=weft server", "../n3", ""} {
		if _, err := joinAs(t, url, creds, bad); !isCode(err, api.CodeInvalid) {
			t.Errorf("join as %q: %v, want invalid", bad, err)
		}
	}
	// Revoked, it may join again.
	if _, err := operator.RevokeNode(context.Background(), "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := joinAs(t, url, creds, "n1"); err != nil {
		t.Errorf("a revoked node joining again: %v", err)
	}
}

func mustPool(t *testing.T, creds string) *x509.CertPool {
	t.Helper()
	pool, err := pki.LoadCA(filepath.Join(creds, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// TestPlainServer: without TLS the server listens on loopback only, stays
// alone, and answers only the admin token it keeps in its data folder and
// for the user who started it (which the Go client finds by itself).
func TestPlainServer(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, cfg := range []ServerConfig{
		{Listen: "0.0.0.0:0"},
		{Listen: "10.1.2.3:7070"},
		{Listen: "127.0.0.1:0", Join: []string{"127.0.0.1:7070"}},
		{Listen: "127.0.0.1:0", BootstrapExpect: 3},
	} {
		cfg.Data, cfg.Logger, cfg.StorageDisabled = t.TempDir(), quiet, true
		if c, err := startController(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "weft tls init") {
			t.Errorf("%+v: %v, want a refusal that names weft tls init", cfg, err)
			if c != nil {
				c.close()
			}
		}
	}
	data := t.TempDir()
	port := freePort(t)
	c, err := startController(context.Background(), ServerConfig{Data: data, Listen: fmt.Sprintf("127.0.0.1:%d", port), StorageDisabled: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	url := "http://" + c.addr
	fi, err := os.Stat(filepath.Join(data, AdminTokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin token: %v, mode %v", err, fi.Mode())
	}
	token := readToken(t, filepath.Join(data, AdminTokenFile))
	if got := client.SavedToken(url); got != token {
		t.Errorf("tokens.json has %q for %s, want the admin token", got, url)
	}
	tokens, _ := client.TokensFile()
	if fi, err := os.Stat(tokens); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens.json: %v, mode %v", err, fi.Mode())
	}
	if _, err := client.New(url).Services(context.Background()); err != nil {
		t.Errorf("the starting user's client: %v", err)
	}
	// Another user: no token, or a wrong one.
	for _, tok := range []string{"", "wrong"} {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/services", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: %s, want 401", tok, resp.Status)
		}
	}
	// Nothing listens for Raft.
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port+1)); err == nil {
		conn.Close()
		t.Error("a server alone listens for Raft")
	}
}

// freePort is a port free now whose next port is free too (Raft's).
func freePort(t *testing.T) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		ln.Close()
		if err == nil {
			next.Close()
			return port
		}
	}
	t.Fatal("no two free ports in a row")
	return 0
}

// TestNodeFetchesOnlyItsOwnInstancesContent: a node's certificate gets the
// packages and images of the instances assigned to it, and 404 for the
// others, which the operator gets.
func TestNodeFetchesOnlyItsOwnInstancesContent(t *testing.T) {
	c, creds := tlsServer(t)
	url := "https://" + c.addr
	pool := mustPool(t, creds)
	operator := client.New(url).WithTLS(&tls.Config{RootCAs: pool}).WithToken(readToken(t, filepath.Join(creds, pki.AdminTokenFile)))
	digest := uploadTinyPackage(t, operator)
	cert, err := joinAs(t, url, creds, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	asNode := client.New(url).WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
	if _, err := asNode.RegisterNode(context.Background(), api.NodeRegistration{Name: "node-1", Address: "https://127.0.0.1:1",
		Capacity: api.Resources{CPU: 4, Memory: 4 << 30}, Runtimes: []string{"process"}}); err != nil {
		t.Fatal(err)
	}
	fetch := func(cl *client.Client) error {
		rc, err := cl.Package(context.Background(), digest)
		if err == nil {
			rc.Close()
		}
		return err
	}
	if err := fetch(asNode); !isCode(err, api.CodeNotFound) {
		t.Errorf("a node fetching a package none of its instances uses: %v, want not found", err)
	}
	if err := fetch(operator); err != nil {
		t.Errorf("the operator fetching the package: %v", err)
	}
	if _, err := operator.Deploy(context.Background(), api.ServiceSpec{Name: "app", Roles: []api.RoleSpec{{
		Name: "w", Kind: "worker", Runtime: "process", Instances: 1, Package: digest, Command: []string{"./app"}}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for fetch(asNode) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("node-1 cannot fetch the package of its instance: %v", fetch(asNode))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJoinNeedsTheServersOwnName: only a server adds a voter to Raft, and
// only under the name its own certificate gives: not with the certificate
// the servers share, another server's, a node's or the admin token.
func TestJoinNeedsTheServersOwnName(t *testing.T) {
	c, creds := tlsServer(t)
	url := "https://" + c.addr
	if err := pki.IssueServer(creds, "s2", nil); err != nil {
		t.Fatal(err)
	}
	load := func(cert, key string) tls.Certificate {
		pair, err := tls.LoadX509KeyPair(filepath.Join(creds, cert), filepath.Join(creds, key))
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	node, err := joinAs(t, url, creds, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		as    string
		certs []tls.Certificate
		token string
		name  string
	}{
		{"the shared server certificate", []tls.Certificate{load(pki.ServerFile, pki.ServerKeyFile)}, "", "s2"},
		{"s2's certificate", []tls.Certificate{load("server-s2.pem", "server-s2-key.pem")}, "", "s3"},
		{"a node's certificate", []tls.Certificate{node}, "", "n1"},
		{"the admin token", nil, readToken(t, filepath.Join(creds, pki.AdminTokenFile)), "s2"},
	} {
		cl := client.New(url).WithTLS(&tls.Config{RootCAs: mustPool(t, creds), Certificates: tc.certs}).WithToken(tc.token)
		_, err := cl.Do(context.Background(), "POST", "/v1/cluster/join", nil, api.JoinCluster{Name: tc.name, Raft: "127.0.0.1:1"}, nil)
		if !isCode(err, api.CodeForbidden) {
			t.Errorf("join as %s with %s: %v, want forbidden", tc.name, tc.as, err)
		}
	}
	members, err := c.store.Members()
	if err != nil || len(members) != 1 {
		t.Errorf("members: %+v %v, want this server alone", members, err)
	}
}

// TestForwardedTokensAreCheckedAgain: a follower that has not applied a
// revocation yet forwards its caller to the leader, which has: the leader
// refuses the revoked token (and a tenant's deleted with it), and a caller
// that does not match its token, so no write is made with either.
func TestForwardedTokensAreCheckedAgain(t *testing.T) {
	c, creds := tlsServer(t)
	url := "https://" + c.addr
	pool := mustPool(t, creds)
	operator := client.New(url).WithTLS(&tls.Config{RootCAs: pool}).WithToken(readToken(t, filepath.Join(creds, pki.AdminTokenFile)))
	ctx := context.Background()
	for _, name := range []string{"acme", "globex"} {
		if _, err := operator.CreateTenant(ctx, api.CreateTenant{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	mint := func(tenant, role string) access.Principal {
		tok, err := operator.CreateToken(ctx, api.CreateToken{Tenant: tenant, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		return tokenPrincipal(api.Token{ID: tok.ID, Tenant: tenant, Role: role})
	}
	live, revoked, gone := mint("acme", api.AccessOwner), mint("acme", api.AccessOwner), mint("globex", api.AccessOwner)
	opTok := mint("", api.AccessOperator)
	if _, err := operator.RevokeToken(ctx, revoked.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.DeleteTenant(ctx, "globex"); err != nil {
		t.Fatal(err)
	}
	server, err := tls.LoadX509KeyPair(filepath.Join(creds, pki.ServerFile), filepath.Join(creds, pki.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	asServer := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{server}}}}
	forged := live
	forged.Tenant = "globex"
	reader := live
	reader.Access = api.AccessReader
	for _, tc := range []struct {
		name string
		p    access.Principal
		want int
	}{
		{"a live token", live, http.StatusOK},
		{"an operator's live token", opTok, http.StatusOK},
		{"a revoked token", revoked, http.StatusUnauthorized},
		{"a deleted tenant's token", gone, http.StatusUnauthorized},
		{"a token named for another tenant", forged, http.StatusForbidden},
		{"an owner's token said to be a reader's", reader, http.StatusForbidden},
	} {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/services", nil)
		req.Header.Set(access.ForwardedHeader, tc.p.Encode())
		resp, err := asServer.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s forwarded: %s, want %d", tc.name, resp.Status, tc.want)
		}
	}
}
