package api

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"time"
)

// A VPN gateway joins one of a tenant's virtual networks to the tenant's
// own network on premises over a WireGuard site-to-site tunnel (weft
// network vpn). A network has at most one.
//
//	POST   /v1/networks/{name}/vpn   CreateVPN -> VPN (201, with PeerConfig)
//	GET    /v1/vpns                  -> []VPN
//	GET    /v1/networks/{name}/vpn   -> VPN
//	DELETE /v1/networks/{name}/vpn   -> 204

// VPN is a network's VPN gateway. Its private key is never shown.
type VPN struct {
	Tenant  string `json:"tenant"`
	Network string `json:"network"`
	// NetworkCIDR is the network's: what the peer routes into the tunnel.
	NetworkCIDR string `json:"networkCidr"`
	// PeerEndpoint is where the gateway sends the tunnel's packets
	// (HOST:PORT on premises); PeerCIDRs are the networks behind the peer
	// that the gateway routes into the tunnel.
	PeerEndpoint string   `json:"peerEndpoint"`
	PeerCIDRs    []string `json:"peerCidrs"`
	// PeerPublicKey is the WireGuard public key of the peer on premises.
	PeerPublicKey string `json:"peerPublicKey"`
	// PublicKey is the gateway's WireGuard public key, Endpoint
	// (HOST:ListenPort) where it listens: the host address of Node, the
	// node that runs it now.
	PublicKey  string `json:"publicKey"`
	Endpoint   string `json:"endpoint"`
	ListenPort int    `json:"listenPort"`
	Node       string `json:"node"`
	// Address is the gateway's own address on the network: instances on
	// the network route PeerCIDRs through it.
	Address   string    `json:"address"`
	CreatedAt time.Time `json:"createdAt"`
	// PeerConfig is the configuration to apply on premises (wg-quick
	// style). Only the answer to the create holds the peer's private key
	// (when Weft made the peer's key pair); elsewhere its place says so.
	PeerConfig string `json:"peerConfig,omitempty"`
}

// CreateVPN is the body of POST /v1/networks/{name}/vpn.
type CreateVPN struct {
	PeerEndpoint string   `json:"peerEndpoint"`
	PeerCIDRs    []string `json:"peerCidrs"`
	// PeerPublicKey is the peer's WireGuard public key (base64); when
	// empty, Weft makes the peer's key pair and returns its private key
	// once, in the create's PeerConfig.
	PeerPublicKey string `json:"peerPublicKey,omitempty"`
}

// Addresses a peer CIDR may not cover: the node-local links every
// instance has (loopback, link-local: the metadata service).
var vpnReserved = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16")}

var hostnameRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

// Check refuses a request that is not one for a network of networkCIDR,
// naming each bad field: an endpoint that is not HOST:PORT, a peer CIDR
// that is not a canonical IPv4 prefix, overlaps the network, another peer
// CIDR or the instances' node-local links, a public key that is not one.
// It returns the peer CIDRs in canonical form.
func (c CreateVPN) Check(networkCIDR string) ([]string, error) {
	var p problems
	if err := checkEndpoint(c.PeerEndpoint); err != nil {
		p.add("peerEndpoint", "%v", err)
	}
	network, _ := netip.ParsePrefix(networkCIDR)
	if len(c.PeerCIDRs) == 0 {
		p.add("peerCidrs", "at least one CIDR of the network on premises is required, e.g. 192.168.0.0/24")
	}
	var seen []netip.Prefix
	var out []string
	for i, s := range c.PeerCIDRs {
		at := fmt.Sprintf("peerCidrs[%d]", i)
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p.add(at, "%q is not a CIDR (e.g. 192.168.0.0/24)", s)
			continue
		case !pfx.Addr().Is4():
			p.add(at, "%s is not IPv4 (only IPv4 networks are served)", s)
			continue
		case pfx.Masked() != pfx:
			p.add(at, "%s has host bits set: the network is %s", s, pfx.Masked())
			continue
		case pfx.Overlaps(network):
			p.add(at, "%s overlaps the virtual network's %s: the two sides need address ranges apart", s, network)
			continue
		}
		for _, r := range vpnReserved {
			if pfx.Overlaps(r) {
				p.add(at, "%s overlaps %s, which every instance keeps for its own node", s, r)
			}
		}
		for j, other := range seen {
			if other.Overlaps(pfx) {
				p.add(at, "%s overlaps peerCidrs[%d] (%s)", s, j, other)
			}
		}
		seen = append(seen, pfx)
		out = append(out, pfx.String())
	}
	if c.PeerPublicKey != "" {
		if b, err := base64.StdEncoding.DecodeString(c.PeerPublicKey); err != nil || len(b) != 32 {
			p.add("peerPublicKey", "%q is not a WireGuard public key (44 characters of base64, as `wg pubkey` prints)", c.PeerPublicKey)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkEndpoint accepts HOST:PORT with an IP address or a DNS name and a
// port of 1 to 65535.
func checkEndpoint(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not HOST:PORT (e.g. 203.0.113.7:51820)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65535", s)
	}
	if _, err := netip.ParseAddr(host); err != nil && !hostnameRE.MatchString(host) {
		return fmt.Errorf("%q: %s is neither an IP address nor a host name", s, host)
	}
	return nil
}

// NodeVPN is a VPN gateway a node runs (Assignments.VPNs): the network it
// joins, its address there, its key and the peer.
type NodeVPN struct {
	Tenant  string `json:"tenant"`
	Network string `json:"network"`
	VNI     int    `json:"vni"`
	CIDR    string `json:"cidr"` // the network's
	// Address is the gateway's on the network (e.g. 10.20.0.2).
	Address    string `json:"address"`
	PrivateKey string `json:"privateKey"`
	ListenPort int    `json:"listenPort"`
	// The peer on premises.
	PeerPublicKey string   `json:"peerPublicKey"`
	PeerEndpoint  string   `json:"peerEndpoint"`
	PeerCIDRs     []string `json:"peerCidrs"`
}

// NetworkVPN is the VPN gateway of a network a node carries
// (NodeNetwork.VPN): the node carrying it (its host is the overlay's peer)
// and the routes the network's instances take to the peer's networks.
type NetworkVPN struct {
	Node      string   `json:"node"`
	Host      string   `json:"host"`
	Address   string   `json:"address"`
	PeerCIDRs []string `json:"peerCidrs"`
}
