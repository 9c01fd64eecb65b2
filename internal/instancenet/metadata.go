package instancenet

import (
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// metadataPort is where the shim listens for the metadata service inside
// an instance's namespace. Connections to MetadataAddr:80 are translated
// to it (redirectMetadata): a listener on MetadataAddr:80 itself would make
// the workload's bind of 0.0.0.0:80, the commonest there is, fail.
const metadataPort = 60169

// redirectMetadata makes the namespace ns send what its processes connect
// to at MetadataAddr:80 to MetadataAddr:metadataPort (nftables, table ip
// weft-metadata, in the namespace's own ruleset).
func redirectMetadata(ns string) error {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("network: open namespace %s: %w", ns, err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return fmt.Errorf("network: nftables in %s: %w", ns, err)
	}
	defer c.CloseLasting()
	addr := net.ParseIP(MetadataAddr).To4()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "weft-metadata"})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: []expr.Any{
		// ip daddr MetadataAddr
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		// tcp dport 80
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(80)},
		// dnat to MetadataAddr:metadataPort
		&expr.Immediate{Register: 1, Data: addr},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(metadataPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: metadata redirect in %s: %w", ns, err)
	}
	return nil
}
