package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/internal/atomicfile"
)

// operatorCommand is `weft operator members|remove-peer|snapshot save|restore`.
func (a *app) operatorCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the controller cluster: members, removing a server, snapshots",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft operator members|remove-peer|snapshot save|snapshot restore")
		},
	}
	members := &cobra.Command{
		Use:   "members",
		Short: "List the controller servers and which one leads",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Members(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, "NAME", "ADDRESS", "LEADER", "VOTER", "API")
			for _, m := range list {
				row(w, m.Name, m.Address, m.Leader, m.Voter, orDash(m.API))
			}
			return w.Flush()
		},
	}
	removePeer := &cobra.Command{
		Use:   "remove-peer NAME",
		Short: "Remove a server from the cluster (one that is gone for good)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().RemovePeer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s from the cluster\n", args[0])
			return nil
		},
	}
	snapshot := &cobra.Command{
		Use:   "snapshot",
		Short: "Save or restore the cluster's whole state",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft operator snapshot save FILE | restore FILE")
		},
	}
	snapshot.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Write a snapshot of the state to FILE",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := atomicfile.Write(args[0], func(f *os.File) error { return a.client().SaveSnapshot(cmd.Context(), f) })
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "snapshot saved to %s\n", args[0])
			return nil
		},
	}, &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster's whole state with the snapshot in FILE",
		Args:  exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := a.client().RestoreSnapshot(cmd.Context(), f); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "state restored from %s\n", args[0])
			return nil
		},
	})
	cmd.AddCommand(members, removePeer, snapshot)
	return cmd
}
