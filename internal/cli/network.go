package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// networkCommand is `weft network create|list|show|delete|rule`.
func (a *app) networkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage virtual networks: a tenant's private address spaces that roles and VMs join",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft network create|list|show|delete|rule|vpn")
		},
	}
	cmd.AddCommand(a.networkCreateCommand(), a.networkListCommand(), a.networkShowCommand(), a.networkDeleteCommand(),
		a.networkRuleCommand(), a.networkVPNCommand())
	return cmd
}

func (a *app) networkCreateCommand() *cobra.Command {
	var req api.CreateNetwork
	var subnets []string
	cmd := &cobra.Command{
		Use:   "create NAME --cidr CIDR [--subnet NAME=CIDR]...",
		Short: "Create a virtual network (without --subnet, one subnet, default, is the whole CIDR)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if req.CIDR == "" {
				return usagef("--cidr: the network's address range is required, e.g. 10.20.0.0/16")
			}
			for _, s := range subnets {
				name, cidr, ok := strings.Cut(s, "=")
				if !ok || name == "" || cidr == "" {
					return usagef("--subnet %q: want NAME=CIDR, e.g. front=10.20.1.0/24", s)
				}
				req.Subnets = append(req.Subnets, api.Subnet{Name: name, CIDR: cidr})
			}
			n, err := a.client().CreateNetwork(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printNetwork(n)
		},
	}
	cmd.Flags().StringVar(&req.CIDR, "cidr", "", "the network's IPv4 address range, e.g. 10.20.0.0/16 (other tenants may use the same)")
	cmd.Flags().StringArrayVar(&subnets, "subnet", nil, "a named part of the CIDR, NAME=CIDR (repeatable; roles pick one with subnet:, else the first)")
	return cmd
}

func (a *app) networkListCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List virtual networks",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			nets, err := a.client().Networks(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(nets))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NAME", "CIDR", "SUBNETS", "USED", "AGE")...)
			for _, n := range nets {
				row(w, a.tenantCol(n.Tenant, n.Name, n.CIDR, len(n.Subnets), n.Used, age(a.now(), n.CreatedAt))...)
			}
			return w.Flush()
		},
	})
}

func (a *app) networkShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a virtual network and its subnets",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := a.client().Network(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printNetwork(n)
		},
	}
}

func (a *app) printNetwork(n api.Network) error {
	if a.jsonOutput() {
		return a.printJSON(n)
	}
	w := a.table()
	row(w, "Name:", n.Name)
	row(w, "CIDR:", n.CIDR)
	row(w, "VNI:", n.VNI)
	row(w, "Used:", fmt.Sprintf("%d addresses", n.Used))
	row(w, "Created:", n.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	for _, s := range n.Subnets {
		row(w, "Subnet:", fmt.Sprintf("%s %s", s.Name, s.CIDR))
	}
	return w.Flush()
}

func (a *app) networkDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a virtual network no service or VM is on",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteNetwork(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !a.jsonOutput() {
				fmt.Fprintf(a.stdout, "network %s deleted\n", args[0])
			}
			return nil
		},
	}
}
