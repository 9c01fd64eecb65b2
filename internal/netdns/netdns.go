// Package netdns is the DNS server of one private network: it answers A
// queries for the network's own names from a table the node agent sets, and
// nothing else.
//
// Names, all under the zone internal.:
//
//	INSTANCE.ROLE.SERVICE.internal  the instance, healthy or not
//	ROLE.SERVICE.internal           every healthy instance of the role
//	NAME.vm.internal                the VM
//
// A known name asked for another type (AAAA, TXT...) gets an empty answer;
// any other name gets NXDOMAIN. The server does not recurse.
//
// One Server serves one network, on a listener in that network's gateway
// namespace (overlay.Host.InNetwork), at the gateway address. A single
// server with a view per source address was the alternative; it cannot
// work here, because tenants may use overlapping CIDRs: a query from
// 10.0.0.5 does not say which network it came from. A listener per network
// cannot answer another network's queries, as they never reach it.
//
// A service named "vm" would share names with the VMs; the two sets of
// addresses are merged. The control plane should reserve the name.
package netdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Instance is one instance of a role on the network.
type Instance struct {
	Name, Role, Service string
	Addr                netip.Addr
	// Healthy instances are in their role's name; every instance has its own.
	Healthy bool
}

// VM is a virtual machine on the network.
type VM struct {
	Name string
	Addr netip.Addr
}

// Records is the whole table of one network.
type Records struct {
	Instances []Instance
	VMs       []VM
}

// ttl is short: instances come and go, and their health changes.
const ttl = 5

// Server answers one network's queries. Set and ServeDNS may run at the
// same time; a query sees one whole table.
type Server struct {
	log   *slog.Logger
	names atomic.Pointer[map[string][]netip.Addr]
}

var _ dns.Handler = (*Server)(nil)

// New returns a Server with an empty table (every name NXDOMAIN).
func New(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{log: log}
	s.Set(Records{})
	return s
}

// Set replaces the table. Names are matched without regard to case;
// entries whose address is not IPv4 or whose labels are empty are left out.
func (s *Server) Set(r Records) {
	names := map[string][]netip.Addr{}
	add := func(name string, a netip.Addr) {
		names[name] = append(names[name], a)
	}
	for _, in := range r.Instances {
		if !in.Addr.Is4() || in.Name == "" || in.Role == "" || in.Service == "" {
			continue
		}
		role := fqdn(in.Role, in.Service)
		if _, ok := names[role]; !ok {
			names[role] = nil // the role exists even with no healthy instance
		}
		add(fqdn(in.Name, in.Role, in.Service), in.Addr)
		if in.Healthy {
			add(role, in.Addr)
		}
	}
	for _, vm := range r.VMs {
		if vm.Addr.Is4() && vm.Name != "" {
			add(fqdn(vm.Name, "vm"), vm.Addr)
		}
	}
	s.names.Store(&names)
}

func fqdn(labels ...string) string {
	return strings.ToLower(strings.Join(labels, ".")) + ".internal."
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	addrs, ok := (*s.names.Load())[strings.ToLower(q.Name)]
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY:
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   net.IP(a.AsSlice()),
			})
		}
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("netdns: write answer", "err", err)
	}
}

// Serve answers queries on pc (UDP) and ln (TCP; either may be nil) until
// ctx ends, then closes both and returns nil; it returns an error if a
// listener fails before that.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	var servers []*dns.Server
	if pc != nil {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s})
	}
	if ln != nil {
		servers = append(servers, &dns.Server{Listener: ln, Handler: s})
	}
	if len(servers) == 0 {
		return errors.New("netdns: serve: no listener")
	}
	type running struct {
		srv     *dns.Server
		started chan struct{}
		done    chan struct{}
	}
	errs := make(chan error, len(servers))
	var all []running
	for _, srv := range servers {
		r := running{srv: srv, started: make(chan struct{}), done: make(chan struct{})}
		srv.NotifyStartedFunc = func() { close(r.started) }
		all = append(all, r)
		go func() {
			defer close(r.done)
			errs <- srv.ActivateAndServe()
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		err = fmt.Errorf("netdns: serve: %w", err)
	}
	// Shutdown refuses a server that has not started yet: wait for each
	// to start or to have failed.
	for _, r := range all {
		select {
		case <-r.started:
			r.srv.Shutdown()
		case <-r.done:
		}
		<-r.done
	}
	return err
}
