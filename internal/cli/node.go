package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

func (a *app) nodesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List nodes",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, "NAME", "STATE", "FD", "CPU", "MEMORY", "INSTANCES", "RUNTIMES", "LAST-HEARTBEAT")
			for _, n := range list {
				row(w, n.Name, n.State, orDash(n.FaultDomain),
					fmt.Sprintf("%g/%g", round2(n.Allocated.CPU), round2(n.Capacity.CPU)),
					n.Allocated.Memory.String()+"/"+n.Capacity.Memory.String(),
					n.Instances, orDash(runtimesColumn(n)), age(a.now(), n.LastHeartbeat))
			}
			return w.Flush()
		},
	}
}

// runtimesColumn lists a node's runtimes, the vm runtime with its
// accelerator: process,container,vm(kvm).
func runtimesColumn(n api.Node) string {
	out := make([]string, len(n.Runtimes))
	for i, rt := range n.Runtimes {
		out[i] = rt
		if accel := n.Attributes["vm.accel"]; rt == api.RuntimeVM && accel != "" {
			out[i] += "(" + accel + ")"
		}
	}
	return strings.Join(out, ",")
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func (a *app) nodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Show, drain, undrain or revoke a node",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft node show|drain|undrain|revoke NAME")
		},
	}
	state := func(n api.Node) string { return n.State }
	verb := func(use, short string, do func(*cobra.Command, string) (api.Node, error), say func(api.Node) string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  exactArgs("NAME"),
			RunE: func(cmd *cobra.Command, args []string) error {
				n, err := do(cmd, args[0])
				if err != nil {
					return err
				}
				if a.jsonOutput() {
					return a.printJSON(n)
				}
				_, err = fmt.Fprintf(a.stdout, "node %s: %s\n", n.Name, say(n))
				return err
			},
		}
	}
	cmd.AddCommand(
		verb("show", "Show a node", func(cmd *cobra.Command, name string) (api.Node, error) {
			return a.client().Node(cmd.Context(), name)
		}, state),
		verb("drain", "Move a node's instances elsewhere and place nothing new on it", func(cmd *cobra.Command, name string) (api.Node, error) {
			return a.client().DrainNode(cmd.Context(), name)
		}, state),
		verb("undrain", "Make a drained node eligible for placement again", func(cmd *cobra.Command, name string) (api.Node, error) {
			return a.client().UndrainNode(cmd.Context(), name)
		}, state),
		verb("revoke", "Refuse the node's certificates issued until now; it rejoins with the join token", func(cmd *cobra.Command, name string) (api.Node, error) {
			return a.client().RevokeNode(cmd.Context(), name)
		}, func(n api.Node) string {
			return "certificates issued before " + n.RevokedBefore.Format(time.RFC3339) + " revoked; it rejoins with the join token"
		}),
	)
	return cmd
}
