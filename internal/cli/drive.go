package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// driveCommand is `weft drive create|list|show|snapshot|delete`.
func (a *app) driveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drive",
		Short: "Manage drives: persistent ext4 file systems kept in the storage service",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft drive create|list|show|snapshot|delete")
		},
	}
	cmd.AddCommand(a.driveCreateCommand(), a.driveListCommand(), a.driveShowCommand(),
		a.driveSnapshotCommand(), a.driveDeleteCommand())
	return cmd
}

func (a *app) driveCreateCommand() *cobra.Command {
	var req api.CreateDrive
	var size string
	cmd := &cobra.Command{
		Use:   "create NAME --disk-size SIZE [--from-snapshot DRIVE@TIME]",
		Short: "Create a drive, empty (formatted ext4 where it is first mounted) or a copy of a snapshot",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if size == "" && req.FromSnapshot == "" {
				return usagef("--disk-size: the drive's size is required, e.g. 10Gi")
			}
			var err error
			if req.Size, err = optionalBytes("--disk-size", size); err != nil {
				return err
			}
			d, err := a.client().CreateDrive(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printDrive(d)
		},
	}
	cmd.Flags().StringVar(&size, "disk-size", "", "the drive's size, e.g. 10Gi (with --from-snapshot: the snapshot's)")
	cmd.Flags().StringVar(&req.FromSnapshot, "from-snapshot", "", "make the drive a copy of this snapshot (DRIVE@TIME, as weft drive show lists them)")
	aliases(cmd, map[string]string{"size": "disk-size"})
	return cmd
}

func (a *app) driveListCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List drives",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			drives, err := a.client().Drives(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(drives))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NAME", "SIZE", "SNAPSHOTS", "FROM", "AGE")...)
			for _, d := range drives {
				row(w, a.tenantCol(d.Tenant, d.Name, d.Size.String(), len(d.Snapshots), orDash(d.From), age(a.now(), d.CreatedAt))...)
			}
			return w.Flush()
		},
	})
}

func (a *app) driveShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a drive and its snapshots",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := a.client().Drive(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printDrive(d)
		},
	}
}

func (a *app) printDrive(d api.Drive) error {
	if a.jsonOutput() {
		return a.printJSON(d)
	}
	w := a.table()
	row(w, "Name:", d.Name)
	row(w, "Size:", d.Size.String())
	row(w, "Page blob:", d.Blob)
	row(w, "From:", orDash(d.From))
	row(w, "Created:", d.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	for _, s := range d.Snapshots {
		row(w, "Snapshot:", s.ID)
	}
	return w.Flush()
}

func (a *app) driveSnapshotCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "snapshot NAME",
		Short: "Take a snapshot of a drive (what its applications synced), kept until the drive is deleted",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().SnapshotDrive(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(s)
			}
			fmt.Fprintln(a.stdout, s.ID)
			return nil
		},
	}
}

func (a *app) driveDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a drive and its snapshots",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteDrive(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !a.jsonOutput() {
				fmt.Fprintf(a.stdout, "drive %s deleted with its snapshots\n", args[0])
			}
			return nil
		},
	}
}
