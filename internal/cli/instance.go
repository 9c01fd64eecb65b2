package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

func (a *app) instancesCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
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
			row(w, a.tenantCol("TENANT", "ID", "SERVICE", "ROLE", "NODE", "STATE", "HEALTH", "VERSION", "ADDRESS", "RESTARTS", "LAST ERROR")...)
			for _, in := range list {
				row(w, a.tenantCol(in.Tenant, in.ID, in.Service, in.Role, orDash(in.Node), in.State, orDash(in.Health), in.Version, orDash(in.Address),
					in.Restarts, orDash(short(lastError(in), 60)))...)
			}
			return w.Flush()
		},
	})
}

// lastError is what LAST ERROR shows: the instance's last error, or why
// it is not placed yet.
func lastError(in api.Instance) string {
	if in.LastError == "" && in.State == api.StatePending {
		return in.Message
	}
	return in.LastError
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

// instanceCommand is `weft instance reimage`.
func (a *app) instanceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Act on one instance",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft instance reimage INSTANCE [--wait]")
		},
	}
	var wait bool
	var timeout time.Duration
	reimage := &cobra.Command{
		Use:   "reimage INSTANCE [--wait]",
		Short: "Start an ephemeral instance again from its package or image, throwing away what it wrote",
		Args:  exactArgs("INSTANCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			in, err := c.Reimage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if wait {
				fmt.Fprintf(a.stderr, "reimaging %s on %s...\n", in.ID, in.Node)
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				defer cancel()
				// The node counts the reimage as a restart.
				for {
					cur, err := c.Instance(ctx, in.ID)
					if err != nil {
						return err
					}
					if cur.Restarts > in.Restarts && cur.State == api.StateRunning && cur.Health == api.HealthHealthy {
						in = cur
						break
					}
					select {
					case <-ctx.Done():
						return fmt.Errorf("instance %s not healthy again after %s", in.ID, timeout)
					case <-time.After(a.pollInterval):
					}
				}
			}
			if a.jsonOutput() {
				return a.printJSON(in)
			}
			fmt.Fprintf(a.stdout, "instance %s reimaged on %s\n", in.ID, in.Node)
			return nil
		},
	}
	reimage.Flags().BoolVar(&wait, "wait", false, "wait until the instance is healthy again")
	reimage.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long --wait waits")
	cmd.AddCommand(reimage)
	return cmd
}
