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
			row(w, a.tenantCol("TENANT", "ID", "SERVICE", "ROLE", "NODE", "STATE", "HEALTH", "VERSION", "ADDRESS", "CPU", "MEMORY", "RESTARTS", "LAST ERROR")...)
			for _, in := range list {
				cpu, mem := "-", "-"
				if f := monitorFigures(in.Extensions); f != nil {
					cpu, mem = fmt.Sprintf("%.1f%%", f.CPUPercent), f.MemoryUsed.String()+"/"+f.MemoryTotal.String()
				}
				row(w, a.tenantCol(in.Tenant, in.ID, in.Service, in.Role, orDash(in.Node), in.State, orDash(in.Health), in.Version, orDash(in.Address),
					cpu, mem, in.Restarts, orDash(short(lastError(in), 60)))...)
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

// instanceCommand is `weft instance show|reimage`.
func (a *app) instanceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instance",
		Short: "Show or act on one instance",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft instance show INSTANCE | weft instance reimage INSTANCE [--wait]")
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "show INSTANCE",
		Short: "Show an instance: where it runs, its state, its extensions and the monitor's figures",
		Args:  exactArgs("INSTANCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := a.client().Instance(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printInstance(in)
		},
	})
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

func (a *app) printInstance(in api.Instance) error {
	if a.jsonOutput() {
		return a.printJSON(in)
	}
	w := a.table()
	row(w, "ID:", in.ID)
	if a.allTenants {
		row(w, "Tenant:", in.Tenant)
	}
	row(w, "Service:", fmt.Sprintf("%s, role %s, version %d", in.Service, in.Role, in.Version))
	row(w, "State:", fmt.Sprintf("%s/%s", in.State, orDash(in.Health)))
	row(w, "Node:", orDash(in.Node))
	row(w, "Address:", orDash(in.Address))
	if in.PrivateAddress != "" {
		row(w, "Private address:", in.PrivateAddress)
	}
	row(w, "Restarts:", in.Restarts)
	if e := lastError(in); e != "" {
		row(w, "Last error:", oneLine(e))
	}
	if ev := in.Scheduled; ev != nil {
		row(w, "Scheduled:", fmt.Sprintf("%s at %s", ev.Type, ev.NotBefore.Format(time.RFC3339)))
	}
	for _, st := range in.Extensions {
		row(w, "Extension:", extensionSummary(api.VMExtension{Name: st.Name, Version: st.Version, Status: &st}))
	}
	if f := monitorFigures(in.Extensions); f != nil {
		row(w, "Figures:", figuresSummary(*f))
	}
	return w.Flush()
}
