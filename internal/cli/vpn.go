package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// networkVPNCommand is `weft network vpn create|list|show|delete`.
func (a *app) networkVPNCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vpn",
		Short: "Manage a network's site-to-site VPN gateway (WireGuard) to your network on premises",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft network vpn create|list|show|delete")
		},
	}
	cmd.AddCommand(a.vpnCreateCommand(), a.vpnListCommand(), a.vpnShowCommand(), a.vpnDeleteCommand())
	return cmd
}

func (a *app) vpnCreateCommand() *cobra.Command {
	var req api.CreateVPN
	cmd := &cobra.Command{
		Use:   "create NETWORK --peer-endpoint HOST:PORT --peer-cidr CIDR [--peer-cidr CIDR]... [--peer-public-key KEY]",
		Short: "Create a network's VPN gateway and print the configuration for the peer on premises",
		Long: "Create a network's VPN gateway: a WireGuard tunnel from a node of the cluster to HOST:PORT on premises,\n" +
			"routing between the network and the peer's CIDRs. It prints the peer's configuration (wg-quick style);\n" +
			"without --peer-public-key it holds a private key made for the peer, printed this once and not kept.",
		Args: exactArgs("NETWORK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.PeerEndpoint == "" {
				return usagef("--peer-endpoint: where the peer on premises listens is required, e.g. 203.0.113.7:51820")
			}
			if len(req.PeerCIDRs) == 0 {
				return usagef("--peer-cidr: the network on premises is required, e.g. 192.168.0.0/24")
			}
			v, err := a.client().CreateVPN(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return a.printVPN(v, "Apply this on the peer (e.g. as /etc/wireguard/wg-weft.conf, then wg-quick up wg-weft):")
		},
	}
	cmd.Flags().StringVar(&req.PeerEndpoint, "peer-endpoint", "", "HOST:PORT where the peer on premises listens for WireGuard")
	cmd.Flags().StringArrayVar(&req.PeerCIDRs, "peer-cidr", nil, "an IPv4 network on premises to route through the tunnel (repeatable)")
	cmd.Flags().StringVar(&req.PeerPublicKey, "peer-public-key", "", "the peer's WireGuard public key (wg pubkey); without it Weft makes the peer's key pair")
	return cmd
}

func (a *app) vpnListCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List the networks' VPN gateways",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			vpns, err := a.client().VPNs(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				for i := range vpns {
					vpns[i].PeerConfig = ""
				}
				return a.printJSON(nonNil(vpns))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NETWORK", "PEER", "PEER CIDRS", "ENDPOINT", "NODE", "AGE")...)
			for _, v := range vpns {
				row(w, a.tenantCol(v.Tenant, v.Network, v.PeerEndpoint, strings.Join(v.PeerCIDRs, ","), v.Endpoint, v.Node, age(a.now(), v.CreatedAt))...)
			}
			return w.Flush()
		},
	})
}

func (a *app) vpnShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NETWORK",
		Short: "Show a network's VPN gateway and the peer's configuration (without the peer's private key)",
		Args:  exactArgs("NETWORK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := a.client().VPN(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printVPN(v, "The peer's configuration:")
		},
	}
}

// printVPN prints v (as JSON with -o json), then the peer's
// configuration under heading.
func (a *app) printVPN(v api.VPN, heading string) error {
	if a.jsonOutput() {
		return a.printJSON(v)
	}
	w := a.table()
	row(w, "Network:", fmt.Sprintf("%s (%s)", v.Network, v.NetworkCIDR))
	row(w, "Peer:", v.PeerEndpoint)
	row(w, "Peer CIDRs:", strings.Join(v.PeerCIDRs, ", "))
	row(w, "Peer public key:", v.PeerPublicKey)
	row(w, "Public key:", v.PublicKey)
	row(w, "Endpoint:", v.Endpoint)
	row(w, "Node:", v.Node)
	row(w, "Address:", v.Address)
	row(w, "Created:", v.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(a.stdout, "\n%s\n\n%s", heading, v.PeerConfig)
	return err
}

func (a *app) vpnDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NETWORK",
		Short: "Delete a network's VPN gateway",
		Args:  exactArgs("NETWORK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteVPN(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !a.jsonOutput() {
				fmt.Fprintf(a.stdout, "VPN gateway of network %s deleted\n", args[0])
			}
			return nil
		},
	}
}
