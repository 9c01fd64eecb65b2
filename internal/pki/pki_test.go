package pki

import (
	"crypto/tls"
	"path/filepath"
	"testing"
)

func TestCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := Init(dir, []string{"10.0.0.1", "ctl.example"}); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, nil); err == nil {
		t.Error("Init overwrote existing credentials")
	}
	srv, err := LoadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := LoadAgent(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Authorize(nil, "Bearer "+srv.AdminToken); err != nil {
		t.Errorf("the admin token: %v", err)
	}
	for _, bad := range []string{"", "Bearer ", "Bearer " + srv.AdminToken + "x", "Basic " + srv.AdminToken} {
		if srv.Authorize(nil, bad) == nil {
			t.Errorf("Authorization %q was accepted", bad)
		}
	}

	// An agent's certificate passes a server's check on a real handshake,
	// at an address no certificate names; one from another CA does not.
	other := filepath.Join(t.TempDir(), "other")
	if err := Init(other, nil); err != nil {
		t.Fatal(err)
	}
	stranger, err := LoadAgent(other)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		agent *Credentials
		ok    bool
	}{{"same CA", agent, true}, {"other CA", stranger, false}} {
		ln, err := tls.Listen("tcp", "127.0.0.2:0", tc.agent.ServerTLS(false))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		conn, err := tls.Dial("tcp", ln.Addr().String(), srv.AgentDialTLS())
		if (err == nil) != tc.ok {
			t.Errorf("%s: dial error %v", tc.name, err)
		}
		if conn != nil {
			conn.Close()
		}
		ln.Close()
	}
}
