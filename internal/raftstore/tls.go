package raftstore

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is Raft's transport over mutual TLS: servers accept only peers
// with a certificate of the cluster's CA, and present their own.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	config    *tls.Config
}

func newTLSStream(bind string, advertise net.Addr, config *tls.Config) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if tcp, ok := advertise.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raftstore: %s is not an address others can dial: set Advertise", advertise)
	}
	server := config.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	return &tlsStream{Listener: tls.NewListener(ln, server), advertise: advertise, config: config}, nil
}

// Addr is what the others dial.
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial connects to another server and checks its certificate.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, err
	}
	config := s.config.Clone()
	config.ServerName = host
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(address), config)
}
