package cli

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"
)

func (a *app) instancesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "instances [SERVICE]",
		Short: "List instances, of every service or of one",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 1 {
				service = args[0]
			}
			list, err := a.client().Instances(cmd.Context(), service)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, "ID", "SERVICE", "ROLE", "NODE", "STATE", "HEALTH", "VERSION", "ADDRESS")
			for _, in := range list {
				row(w, in.ID, in.Service, in.Role, orDash(in.Node), in.State, orDash(in.Health), in.Version, orDash(in.Address))
			}
			return w.Flush()
		},
	}
}

func (a *app) logsCommand() *cobra.Command {
	var follow bool
	var tail int64
	cmd := &cobra.Command{
		Use:   "logs INSTANCE [-f]",
		Short: "Print an instance's output",
		Args:  exactArgs("INSTANCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := a.client().Logs(ctx, args[0], tail, follow)
			if err != nil {
				return err
			}
			defer r.Close()
			if _, err := io.Copy(a.stdout, r); err != nil && !errors.Is(ctx.Err(), context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what it writes")
	cmd.Flags().Int64Var(&tail, "tail", 0, "print only the last N lines (0: all that is kept)")
	return cmd
}
