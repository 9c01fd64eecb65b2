package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Init(dir, []string{"10.0.0.1", "ctl.example"}); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, nil); err == nil {
		t.Error("Init overwrote existing credentials")
	}
	if _, err := os.Stat(filepath.Join(dir, AgentFile)); err == nil {
		t.Error("Init made an agent certificate for agents to share: agents get theirs for the join token")
	}
	srv, err := LoadServer(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !srv.IsAdminToken("Bearer " + srv.AdminToken) {
		t.Error("the admin token was refused")
	}
	for _, bad := range []string{"", "Bearer ", "Bearer " + srv.AdminToken + "x", "Basic " + srv.AdminToken, "Bearer " + srv.JoinToken} {
		if srv.IsAdminToken(bad) {
			t.Errorf("Authorization %q was taken for the admin token", bad)
		}
	}
	agent, err := LoadAgent(join(t, srv, "node-1"))
	if err != nil {
		t.Fatal(err)
	}

	// An agent's certificate passes a server's check on a real handshake,
	// at an address no certificate names; one from another CA does not.
	other, _ := newCluster(t)
	stranger, err := LoadAgent(join(t, other, "node-1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		agent *Credentials
		ok    bool
	}{{"same CA", agent, true}, {"other CA", stranger, false}} {
		if err := handshake(t, tc.agent.ServerTLS(false), srv.AgentDialTLS()); (err == nil) != tc.ok {
			t.Errorf("%s: dial error %v", tc.name, err)
		}
	}

	// A node's agent and Raft admit the servers' certificate only: not
	// another node's, though the same CA signed it.
	node2, err := LoadAgent(join(t, srv, "node-2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, agent.AgentServeTLS(), srv.AgentDialTLS()); err != nil {
		t.Errorf("a server could not call an agent: %v", err)
	}
	if err := handshake(t, agent.AgentServeTLS(), node2.AgentDialTLS()); err == nil {
		t.Error("a node's certificate was admitted by another node's agent")
	}
	if err := handshake(t, srv.RaftTLS(), srv.RaftTLS()); err != nil {
		t.Errorf("Raft between servers: %v", err)
	}
	if err := handshake(t, srv.RaftTLS(), node2.ClientTLS()); err == nil {
		t.Error("Raft admitted a node's certificate")
	}
}

// handshake runs a TLS handshake between a listener on serve and a dialer
// on dial, and returns the first error either side saw.
func handshake(t *testing.T, serve, dial *tls.Config) error {
	t.Helper()
	serve = serve.Clone()
	serve.ClientAuth = tls.RequireAndVerifyClientCert
	ln, err := tls.Listen("tcp", "127.0.0.2:0", serve)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		served <- err
	}()
	dial = dial.Clone()
	dial.ServerName = "localhost"
	conn, err := tls.Dial("tcp", ln.Addr().String(), dial)
	if err == nil {
		// TLS 1.3: the client's certificate is checked after the
		// client's handshake ends; the server's verdict arrives on read.
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if errors.Is(err, io.EOF) {
			err = nil
		}
		conn.Close()
	}
	if serr := <-served; serr != nil {
		return serr
	}
	return err
}

// newCluster makes a cluster's credentials and returns the server's.
func newCluster(t *testing.T) (*Credentials, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	srv, err := LoadServer(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return srv, dir
}

// join signs a certificate for node name and writes the agent's
// credentials to a folder of their own, as a joining agent does.
func join(t *testing.T, srv *Credentials, name string) string {
	t.Helper()
	keyPEM, csrPEM, err := NewAgentRequest(name)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := srv.SignAgent(name, csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := WriteAgent(dir, srv.CAPEM(), certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSignAgent(t *testing.T) {
	srv, dir := newCluster(t)
	_, csrPEM, err := NewAgentRequest("node-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		lifetime, want time.Duration
	}{{0, DefaultAgentLifetime}, {time.Minute, time.Minute}} {
		srv.AgentLifetime = tc.lifetime
		before := time.Now()
		certPEM, err := srv.SignAgent("node-1", csrPEM)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		issued := Issued(cert)
		if issued.Before(before.Truncate(time.Second)) || issued.After(time.Now()) {
			t.Errorf("lifetime %v: issued %v, want about %v", tc.lifetime, issued, before)
		}
		if got := cert.NotAfter.Sub(issued); got != tc.want {
			t.Errorf("lifetime %v: good for %v, want %v", tc.lifetime, got, tc.want)
		}
		if !cert.NotBefore.Before(issued) {
			t.Errorf("lifetime %v: valid from %v, not before it was issued (%v)", tc.lifetime, cert.NotBefore, issued)
		}
		if name, ok := AgentNode(cert); !ok || name != "node-1" {
			t.Errorf("AgentNode = %q, %v, want node-1", name, ok)
		}
	}

	// The certificate of Init names no node.
	for _, name := range []string{ServerFile} {
		c, err := load(dir, name, strings.Replace(name, ".pem", "-key.pem", 1))
		if err != nil {
			t.Fatal(err)
		}
		if node, ok := AgentNode(c.Certificate().Leaf); ok {
			t.Errorf("%s belongs to node %q", name, node)
		}
	}

	_, otherCSR, _ := NewAgentRequest("node-2")
	for _, tc := range []struct{ name, node, csr, want string }{
		{"not PEM", "node-1", "hello", "not a PEM certificate request"},
		{"not a request", "node-1", string(srv.CAPEM()), "not a PEM certificate request"},
		{"garbled", "node-1", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "certificate request:"},
		{"another node's", "node-1", string(otherCSR), `names "node-2", not node "node-1"`},
		{"no name", "", string(csrPEM), `not node ""`},
	} {
		if _, err := srv.SignAgent(tc.node, []byte(tc.csr)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestRenewAt(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		want     time.Duration // after issue
	}{
		{"30 days", 30 * 24 * time.Hour, 20 * 24 * time.Hour},
		{"a test's 6s", 6 * time.Second, 4 * time.Second},
		{"expired at once", 0, 0},
	} {
		cert := &x509.Certificate{NotBefore: now.Add(-backdate), NotAfter: now.Add(tc.lifetime)}
		if got := Issued(cert); !got.Equal(now) {
			t.Errorf("%s: Issued = %v, want %v", tc.name, got, now)
		}
		if got := RenewAt(cert).Sub(now); got != tc.want {
			t.Errorf("%s: renews %v after issue, want %v", tc.name, got, tc.want)
		}
	}
	// Shorter than the backdate (not one of ours): renew at once.
	odd := &x509.Certificate{NotBefore: now, NotAfter: now.Add(time.Minute)}
	if got := RenewAt(odd); !got.Equal(odd.NotAfter) {
		t.Errorf("RenewAt = %v, want %v", got, odd.NotAfter)
	}
	for _, tc := range []struct{ lifetime, want time.Duration }{
		{30 * 24 * time.Hour, 5 * time.Minute}, {time.Hour, 3 * time.Minute}, {6 * time.Second, time.Second},
	} {
		cert := &x509.Certificate{NotBefore: now.Add(-backdate), NotAfter: now.Add(tc.lifetime)}
		if got := retryInterval(cert); got != tc.want {
			t.Errorf("lifetime %v: retry every %v, want %v", tc.lifetime, got, tc.want)
		}
	}
}

// TestWriteAgentAfterACrash: a renewal interrupted between writing the new
// key and the new certificate leaves the old pair; interrupted after the
// certificate, the new pair.
func TestWriteAgentAfterACrash(t *testing.T) {
	srv, _ := newCluster(t)
	dir := join(t, srv, "node-1")
	old := serialIn(t, dir)
	keyPEM, csrPEM, _ := NewAgentRequest("node-1")
	certPEM, err := srv.SignAgent("node-1", csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	// Crashed before the certificate: the pending key is dropped.
	if err := os.WriteFile(filepath.Join(dir, pendingKey), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serialIn(t, dir); got != old {
		t.Errorf("serial %s, want the old %s", got, old)
	}
	// Crashed after it: the pending key is put in place.
	if err := os.WriteFile(filepath.Join(dir, pendingKey), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, AgentFile), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serialIn(t, dir); got == old {
		t.Error("the renewed pair was not completed")
	}
	if _, err := os.Stat(filepath.Join(dir, pendingKey)); !os.IsNotExist(err) {
		t.Errorf("the pending key is still there: %v", err)
	}
	// A certificate that does not go with its key is never written.
	otherKey, _, _ := NewAgentRequest("node-1")
	if err := WriteAgent(dir, srv.CAPEM(), certPEM, otherKey); err == nil {
		t.Error("WriteAgent took a certificate with another key")
	}
}

func serialIn(t *testing.T, dir string) string {
	t.Helper()
	c, err := LoadAgent(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c.Certificate().Leaf.SerialNumber.String()
}

// TestRenewer renews a short-lived certificate on time, on disk and on the
// wire: a server sees the new certificate on the next handshake.
func TestRenewer(t *testing.T) {
	srv, _ := newCluster(t)
	srv.AgentLifetime = 3 * time.Second
	dir := join(t, srv, "node-1")
	agent, err := LoadAgent(dir)
	if err != nil {
		t.Fatal(err)
	}
	first := agent.Certificate().Leaf
	renewed := make(chan time.Time, 10)
	r := &Renewer{
		Node: "node-1", Dir: dir, Creds: agent, Logger: slog.New(slog.DiscardHandler),
		Sign: func(ctx context.Context, csrPEM []byte) ([]byte, []byte, error) {
			cert, err := srv.SignAgent("node-1", csrPEM)
			return cert, srv.CAPEM(), err
		},
		Renewed: func() { renewed <- time.Now() },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	var at time.Time
	select {
	case at = <-renewed:
	case <-time.After(10 * time.Second):
		t.Fatal("not renewed")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if at.Before(RenewAt(first)) || at.After(first.NotAfter) {
		t.Errorf("renewed at %v, want between %v and %v", at, RenewAt(first), first.NotAfter)
	}
	now := agent.Certificate().Leaf
	if now.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the certificate in use did not change")
	}
	if got := serialIn(t, dir); got != now.SerialNumber.String() {
		t.Errorf("on disk serial %s, in use %s", got, now.SerialNumber)
	}

	// The next handshake presents the new certificate.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.ServerTLS(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan *x509.Certificate, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() == nil {
			seen <- tc.ConnectionState().PeerCertificates[0]
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), agent.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got := <-seen; got.SerialNumber.Cmp(now.SerialNumber) != 0 {
		t.Errorf("the server saw serial %s, want %s", got.SerialNumber, now.SerialNumber)
	}
}

// TestIssueServer: a server's own certificate names it, is a server's, and
// LoadServer prefers it to the shared one for that server only.
func TestIssueServer(t *testing.T) {
	_, dir := newCluster(t)
	if err := IssueServer(dir, "s2", []string{"10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "s 3", "a/b", "x\ny"} {
		if IssueServer(dir, bad, nil) == nil {
			t.Errorf("IssueServer(%q) made a certificate", bad)
		}
	}
	own, err := LoadServer(dir, "s2")
	if err != nil {
		t.Fatal(err)
	}
	leaf := own.Certificate().Leaf
	if name, ok := ServerName(leaf); !ok || name != "s2" || !IsServer(leaf) {
		t.Errorf("s2's certificate: ServerName %q %v, IsServer %v", name, ok, IsServer(leaf))
	}
	if _, ok := AgentNode(leaf); ok {
		t.Error("a server's certificate is taken for a node's")
	}
	shared, err := LoadServer(dir, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ServerName(shared.Certificate().Leaf); ok || !IsServer(shared.Certificate().Leaf) {
		t.Error("s1 without a certificate of its own does not load the shared one")
	}
}
