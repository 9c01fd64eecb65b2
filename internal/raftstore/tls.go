package raftstore

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
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

// localStream is the transport of a server alone that no other server may
// ever reach (plain mode, on one machine): it listens nowhere, so nothing
// but this server can speak Raft to it.
type localStream struct {
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

// newLocalStream names itself bind, the address its configuration holds.
func newLocalStream(bind string) (*localStream, error) {
	addr, err := net.ResolveTCPAddr("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &localStream{addr: addr, closed: make(chan struct{})}, nil
}

func (s *localStream) Accept() (net.Conn, error) {
	<-s.closed
	return nil, net.ErrClosed
}

func (s *localStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *localStream) Addr() net.Addr { return s.addr }

func (s *localStream) Dial(address raft.ServerAddress, _ time.Duration) (net.Conn, error) {
	return nil, fmt.Errorf("raftstore: this server is alone and dials no other (%s)", address)
}
