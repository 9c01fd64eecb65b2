package overlay

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Action is what a matching Rule does with a new connection.
type Action string

// The actions.
const (
	Allow Action = "allow"
	Deny  Action = "deny"
)

// Rule is one security rule of a network. A rule matches the first packet
// of a connection (its conntrack state is new) forwarded on the network's
// bridge; replies of connections already allowed always pass.
type Rule struct {
	Action Action
	// Protocol is "tcp", "udp", "icmp" or "" for any.
	Protocol string
	// FromPort..ToPort is the destination port range (tcp and udp only);
	// 0..0 is any port. A single port has FromPort == ToPort.
	FromPort, ToPort uint16
	// Source limits the rule to senders in this range; the zero Prefix is
	// any sender.
	Source netip.Prefix
}

func (r Rule) validate() error {
	if r.Action != Allow && r.Action != Deny {
		return fmt.Errorf("%w: rule action %q (want allow or deny)", ErrInvalid, r.Action)
	}
	switch r.Protocol {
	case "tcp", "udp":
	case "icmp", "":
		if r.FromPort != 0 || r.ToPort != 0 {
			return fmt.Errorf("%w: rule with ports needs protocol tcp or udp, not %q", ErrInvalid, r.Protocol)
		}
	default:
		return fmt.Errorf("%w: rule protocol %q (want tcp, udp, icmp or empty)", ErrInvalid, r.Protocol)
	}
	if r.FromPort > r.ToPort {
		return fmt.Errorf("%w: rule port range %d-%d", ErrInvalid, r.FromPort, r.ToPort)
	}
	if r.Source.IsValid() && !r.Source.Addr().Is4() {
		return fmt.Errorf("%w: rule source %v is not IPv4", ErrInvalid, r.Source)
	}
	return nil
}

const tableName = "weft"

// ctZone gives each network a conntrack zone of 1..65535. VNIs that agree
// modulo 65535 share a zone, which only matters if they also share
// address pairs on one host; the control plane allocates small VNIs.
func ctZone(vni uint32) uint16 { return uint16(vni%65535) + 1 }

// writeRules replaces tables inet weft and bridge weft with the rules for
// networks in one transaction.
func (h *Host) writeRules(networks []Network) error {
	opts := []nftables.ConnOption{}
	if h.ns.IsOpen() {
		opts = append(opts, nftables.WithNetNSFd(int(h.ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("overlay: nftables: %w", err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: tableName}
	// Add before delete: deleting a missing table would fail the batch.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	raw := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	for _, n := range networks {
		br := bridgeName(n.VNI)
		zone := make([]byte, 2)
		binary.NativeEndian.PutUint16(zone, ctZone(n.VNI))
		c.AddRule(&nftables.Rule{Table: t, Chain: raw, Exprs: concat(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
			[]expr.Any{
				&expr.Immediate{Register: 1, Data: zone},
				&expr.Ct{Key: expr.CtKeyZONE, Register: 1, SourceRegister: true},
			})})
		// Routed into or out of the network: never.
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br),
			verdict(expr.VerdictDrop))})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(
			ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, br),
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br),
			verdict(expr.VerdictDrop))})
		if len(n.Rules) == 0 {
			continue
		}
		// Bridged within the network (br_netfilter shows the bridge as
		// both interfaces): the network's own rules.
		chain := c.AddChain(&nftables.Chain{Name: "net-" + netPrefix(n.VNI)[1:], Table: t})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: concat(
			ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, br),
			[]expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: chain.Name}})})
		c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: concat(
			ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
			verdict(expr.VerdictAccept))})
		for _, r := range n.Rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: ruleExprs(r)})
		}
	}
	// The overlay is IPv4 only and the rules above see only IPv4: IPv6
	// (link-local addresses come up by themselves) would pass them by, so
	// the bridge family drops it on every port of every network.
	bt := &nftables.Table{Family: nftables.TableFamilyBridge, Name: tableName}
	c.AddTable(bt)
	c.DelTable(bt)
	c.AddTable(bt)
	bfwd := c.AddChain(&nftables.Chain{Name: "forward", Table: bt, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	for _, n := range networks {
		c.AddRule(&nftables.Rule{Table: bt, Chain: bfwd, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(netPrefix(n.VNI))},
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(unix.ETH_P_IPV6)},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("overlay: write nftables table %s: %w", tableName, err)
	}
	return nil
}

// ruleExprs compiles one Rule: IPv4, then source, protocol and port
// matches, then the verdict.
func ruleExprs(r Rule) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
	if r.Source.IsValid() {
		p := r.Source.Masked()
		mask := net4Mask(p.Bits())
		a := p.Addr().As4()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
	}
	if proto, ok := map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "icmp": unix.IPPROTO_ICMP}[r.Protocol]; ok {
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}})
	}
	if r.ToPort != 0 {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		if r.FromPort == r.ToPort {
			e = append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.FromPort)})
		} else {
			e = append(e, &expr.Range{Op: expr.CmpOpEq, Register: 1,
				FromData: binaryutil.BigEndian.PutUint16(r.FromPort), ToData: binaryutil.BigEndian.PutUint16(r.ToPort)})
		}
	}
	if r.Action == Allow {
		return append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	}
	return append(e, &expr.Verdict{Kind: expr.VerdictDrop})
}

func net4Mask(bits int) []byte {
	m := uint32(0)
	if bits > 0 {
		m = ^uint32(0) << (32 - bits)
	}
	return binaryutil.BigEndian.PutUint32(m)
}

// ifname matches an interface name exactly (the kernel pads names to 16
// bytes with zeros; comparing the padded name excludes longer names).
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, 16)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

func ctState(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func concat(parts ...[]expr.Any) []expr.Any {
	var all []expr.Any
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}
