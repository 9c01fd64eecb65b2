package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// networkRuleCommand is `weft network rule add|list|remove`: a network's
// security rules (api.NetworkRule).
func (a *app) networkRuleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "Manage a virtual network's security rules: allow or deny new connections by protocol, port and source",
		Long: `A network's security rules decide which new connections between its members pass, as an Azure
network security group's inbound rules do: the rule with the lowest priority number that matches a
connection's first packet decides, and a connection no rule matches is allowed. Replies of an allowed
connection always pass, and connections already open when a rule changes are not cut.
To let through only some traffic, allow it, then deny the rest with a higher priority number.`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft network rule add|list|remove")
		},
	}
	cmd.AddCommand(a.networkRuleAddCommand(), a.networkRuleListCommand(), a.networkRuleRemoveCommand())
	return cmd
}

func (a *app) networkRuleAddCommand() *cobra.Command {
	var r api.NetworkRule
	cmd := &cobra.Command{
		Use:   "add NETWORK --name NAME --priority N --action allow|deny [--protocol tcp|udp|icmp|any] [--port P[-Q]] [--source CIDR]",
		Short: "Add a security rule to a virtual network",
		Args:  exactArgs("NETWORK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case r.Name == "":
				return usagef("--name: the rule's name is required")
			case r.Priority == 0:
				return usagef("--priority: the rule's priority is required, %d to %d (the lowest number is judged first)", api.MinRulePriority, api.MaxRulePriority)
			case r.Action == "":
				return usagef("--action: allow or deny is required")
			}
			rule, err := a.client().AddNetworkRule(cmd.Context(), args[0], r)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(rule)
			}
			return a.printNetworkRules([]api.NetworkRule{rule})
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Name, "name", "", "the rule's name, unique in the network")
	f.IntVar(&r.Priority, "priority", 0, fmt.Sprintf("%d to %d, unique in the network: rules are judged lowest first, and the first that matches decides", api.MinRulePriority, api.MaxRulePriority))
	f.StringVar(&r.Action, "action", "", "allow or deny")
	f.StringVar(&r.Protocol, "protocol", api.RuleAny, "tcp, udp, icmp or any")
	f.StringVar(&r.Port, "port", api.RuleAny, "the destination port, 8080, or range, 8080-8090 (tcp and udp), or any")
	f.StringVar(&r.Source, "source", api.RuleAny, "the senders, an IPv4 CIDR (10.0.0.0/8) or address, or any")
	return cmd
}

func (a *app) networkRuleListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list NETWORK",
		Short: "List a virtual network's security rules in the order they are judged",
		Args:  exactArgs("NETWORK"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rules, err := a.client().NetworkRules(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(rules))
			}
			return a.printNetworkRules(rules)
		},
	}
}

func (a *app) printNetworkRules(rules []api.NetworkRule) error {
	w := a.table()
	row(w, "PRIORITY", "NAME", "ACTION", "PROTOCOL", "PORT", "SOURCE")
	for _, r := range rules {
		row(w, r.Priority, r.Name, r.Action, r.Protocol, r.Port, r.Source)
	}
	return w.Flush()
}

func (a *app) networkRuleRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NETWORK NAME",
		Short: "Remove a security rule from a virtual network",
		Args:  exactArgs("NETWORK", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().RemoveNetworkRule(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			if !a.jsonOutput() {
				fmt.Fprintf(a.stdout, "rule %s removed from network %s\n", args[1], args[0])
			}
			return nil
		},
	}
}
