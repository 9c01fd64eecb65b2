package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/pki"
)

// TestTLSAgentCertificates runs a TLS cluster whose agent certificates
// last seconds: agents renew theirs and keep heartbeating past the first
// one's expiry; a revoked node's certificate is refused by every server
// and the node goes down while the other carries on; the revoked node
// joins again with the join token. Bad renewals are refused by name.
func TestTLSAgentCertificates(t *testing.T) {
	parallel(t)
	const lifetime = 10 * time.Second
	c, _, pool := newTLSServers(t, "--agent-cert-lifetime", lifetime.String())
	c.startNodes(2)
	tlsDir := func(node string) string { return filepath.Join(c.dir, node, "tls") }
	// asNode calls one server (or all) with the certificate held.
	asNode := func(addrs string, cert tls.Certificate) *client.Client {
		return client.New(addrs).WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
	}

	// (a) Renewal: a new serial on disk, and heartbeats after the first
	// certificate expired, which the servers would refuse.
	first := agentCertificate(t, tlsDir("node-1"))
	if got := first.Leaf.NotAfter.Sub(pki.Issued(first.Leaf)); got != lifetime {
		t.Fatalf("the joined certificate lasts %v, want %v", got, lifetime)
	}
	c.waitFor("node-1 to renew its certificate", 2*lifetime, func() bool {
		return serialOf(t, tlsDir("node-1")) != first.Leaf.SerialNumber.String()
	})
	time.Sleep(time.Until(first.Leaf.NotAfter.Add(2 * time.Second))) // a real certificate's real expiry
	c.waitFor("heartbeats with the renewed certificates", 5*time.Second, func() bool {
		for _, n := range c.mustNodes() {
			if n.State != api.NodeReady || time.Since(n.LastHeartbeat) > 1500*time.Millisecond {
				return false
			}
		}
		return true
	})
	if _, err := asNode(c.api, first).Heartbeat(context.Background(), "node-1", api.Heartbeat{}); err == nil {
		t.Error("a server took a heartbeat with an expired certificate")
	}

	// Bad renewals and a certificate acting for another node.
	node2 := agentCertificate(t, tlsDir("node-2"))
	_, csrPEM, err := pki.NewAgentRequest("node-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		code string
	}{
		{"node-2 renews node-1's", func() error {
			_, err := asNode(c.api, node2).RenewCertificate(context.Background(), api.AgentCertificateRequest{Name: "node-1", CSR: string(csrPEM)})
			return err
		}, api.CodeForbidden},
		{"a malformed request", func() error {
			_, err := asNode(c.api, node2).RenewCertificate(context.Background(), api.AgentCertificateRequest{Name: "node-2", CSR: "not a CSR"})
			return err
		}, api.CodeInvalid},
		{"a request for another name", func() error {
			_, err := asNode(c.api, node2).RenewCertificate(context.Background(), api.AgentCertificateRequest{Name: "node-2", CSR: string(csrPEM)})
			return err
		}, api.CodeInvalid},
		{"renewing with the API token", func() error {
			_, err := c.client.RenewCertificate(context.Background(), api.AgentCertificateRequest{Name: "node-2", CSR: string(csrPEM)})
			return err
		}, api.CodeForbidden},
		{"node-2 rotates the join token", func() error {
			_, err := asNode(c.api, node2).RotateJoinToken(context.Background())
			return err
		}, api.CodeForbidden},
		{"node-2 heartbeats for node-1", func() error {
			_, err := asNode(c.api, node2).Heartbeat(context.Background(), "node-1", api.Heartbeat{})
			return err
		}, api.CodeForbidden},
	} {
		var e *api.Error
		if err := tc.do(); !errors.As(err, &e) || e.Code != tc.code || strings.Contains(e.Message, "\n") {
			t.Errorf("%s: %v, want one line of %s", tc.name, err, tc.code)
		}
	}
	if _, stderr, code := c.weft("node", "revoke", "node-9"); code == 0 || !strings.Contains(stderr, "no node named node-9") {
		t.Errorf("revoking an unknown node: exit %d, %q", code, stderr)
	}

	// (b) Revocation: every server refuses node-1's certificate at once;
	// node-1 goes down, node-2 renews and stays ready.
	held := agentCertificate(t, tlsDir("node-1"))
	var revoked api.Node
	if err := json.Unmarshal([]byte(c.mustWeft("node", "revoke", "node-1", "-o", "json")), &revoked); err != nil {
		t.Fatal(err)
	}
	if revoked.RevokedBefore.IsZero() {
		t.Fatalf("node-1 after revoke: %+v", revoked)
	}
	for _, addr := range strings.Split(c.apiArg, ",") {
		// A follower applies the entry the leader committed within moments.
		c.waitFor("server "+addr+" to refuse node-1", 3*time.Second, func() bool {
			_, err := asNode("https://"+addr, held).Heartbeat(context.Background(), "node-1", api.Heartbeat{})
			var e *api.Error
			return errors.As(err, &e) && e.Code == api.CodeForbidden && strings.Contains(e.Message, "revoked")
		})
	}
	node2Serial := serialOf(t, tlsDir("node-2"))
	c.waitFor("node-1 down", 20*time.Second, func() bool { return nodeState(c, "node-1") == api.NodeDown })
	c.waitFor("node-2 to renew again", 2*lifetime, func() bool { return serialOf(t, tlsDir("node-2")) != node2Serial })
	if s := nodeState(c, "node-2"); s != api.NodeReady {
		t.Errorf("node-2 is %s after node-1's revocation", s)
	}

	// (c) Rotating the join token: every server refuses the old one, which
	// the revoked node's host still has.
	oldJoin := c.agentFlags[1]
	var rotated api.JoinToken
	if err := json.Unmarshal([]byte(c.mustWeft("tls", "rotate-join-token", "-o", "json")), &rotated); err != nil {
		t.Fatal(err)
	}
	if rotated.Token == "" || rotated.Token == oldJoin || rotated.SHA256 != pki.TokenHash(rotated.Token) {
		t.Fatalf("rotated join token: %+v", rotated)
	}
	_, csr1, err := pki.NewAgentRequest("node-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range strings.Split(c.apiArg, ",") {
		joinWith := func(tok string) error {
			_, err := client.New("https://"+addr).WithTLS(&tls.Config{RootCAs: pool}).WithToken(tok).
				JoinCluster(context.Background(), api.AgentCertificateRequest{Name: "node-1", CSR: string(csr1)})
			return err
		}
		c.waitFor("server "+addr+" to refuse the old join token", 3*time.Second, func() bool {
			var e *api.Error
			return errors.As(joinWith(oldJoin), &e) && e.Code == api.CodeUnauthorized
		})
		if err := joinWith(rotated.Token); err != nil {
			t.Errorf("joining through %s with the new token: %v", addr, err)
		}
	}

	// A revoked node joins again with the new join token: its old
	// credentials removed, it gets a certificate issued after the
	// revocation.
	c.kill9(c.agents["node-1"])
	if err := os.RemoveAll(tlsDir("node-1")); err != nil {
		t.Fatal(err)
	}
	c.agentFlags[1] = rotated.Token
	c.startAgent("node-1")
	c.waitFor("node-1 ready after joining again", 30*time.Second, func() bool { return nodeState(c, "node-1") == api.NodeReady })
	if got := agentCertificate(t, tlsDir("node-1")); !pki.Issued(got.Leaf).After(revoked.RevokedBefore) {
		t.Errorf("node-1's new certificate was issued %v, before the revocation at %v", pki.Issued(got.Leaf), revoked.RevokedBefore)
	}
}

// agentCertificate reads an agent's certificate and key, waiting out a
// renewal caught between its two files.
func agentCertificate(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	var err error
	for range 50 {
		var cert tls.Certificate
		if cert, err = tls.LoadX509KeyPair(filepath.Join(dir, pki.AgentFile), filepath.Join(dir, pki.AgentKeyFile)); err == nil {
			return cert
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the agent's credentials in %s: %v", dir, err)
	return tls.Certificate{}
}

// serialOf is the serial of the certificate in an agent's folder.
func serialOf(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, pki.AgentFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no certificate", dir)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber.String()
}

func nodeState(c *cluster, name string) string {
	n, err := c.client.Node(context.Background(), name)
	if err != nil {
		return ""
	}
	return n.State
}

// TestNodeCertificateIsNotAnAdmin: with only a node's certificate, a
// caller of a TLS cluster gets 403 on everything but its own node's routes
// (deploy, storage account keys, the state snapshot, Raft join, join token
// rotation, revoking another node), and a rogue join cannot add a voter.
func TestNodeCertificateIsNotAnAdmin(t *testing.T) {
	parallel(t)
	c, _, pool := newTLSServers(t)
	c.startNodes(2)
	c.mustWeft("storage", "account", "create", "secrets")
	node1 := agentCertificate(t, filepath.Join(c.dir, "node-1", "tls"))
	asNode := client.New(c.api).WithTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{node1}})
	ctx := context.Background()
	forbidden := func(what string, err error) {
		t.Helper()
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeForbidden {
			t.Errorf("%s with node-1's certificate: %v, want forbidden", what, err)
		}
	}
	_, err := asNode.Deploy(ctx, api.ServiceSpec{Name: "evil", Roles: []api.RoleSpec{{Name: "r", Kind: "worker", Runtime: "process", Instances: 1, Command: []string{"/bin/id"}}}})
	forbidden("deploy", err)
	_, err = asNode.StorageAccountKeys(ctx, "secrets")
	forbidden("storage account keys", err)
	_, err = asNode.CreateStorageAccount(ctx, "mine")
	forbidden("create a storage account", err)
	forbidden("snapshot", asNode.SaveSnapshot(ctx, io.Discard))
	_, err = asNode.RotateJoinToken(ctx)
	forbidden("rotate the join token", err)
	_, err = asNode.RevokeNode(ctx, "node-2")
	forbidden("revoke node-2", err)
	_, err = asNode.Heartbeat(ctx, "node-2", api.Heartbeat{})
	forbidden("node-2's heartbeat", err)
	_, err = asNode.Do(ctx, "POST", "/v1/cluster/join", nil, api.JoinCluster{Name: "rogue", Raft: "127.0.0.1:1"}, nil)
	forbidden("join Raft", err)

	// The rogue voter never made it in: the cluster keeps its quorum and
	// its three members.
	members, err := c.client.Members(ctx)
	if err != nil || len(members) != 3 {
		t.Errorf("members after the rogue join: %v %+v", err, members)
	}
	c.mustWeft("storage", "account", "create", "stillwrites")
	// Its own routes still work.
	if _, err := asNode.Heartbeat(ctx, "node-1", api.Heartbeat{}); err != nil {
		t.Errorf("node-1's own heartbeat: %v", err)
	}
}
