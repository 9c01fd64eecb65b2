package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/internal/buildinfo"
)

// versionText is what `weft version` and `weft --version` print.
func versionText() string { return "weft " + buildinfo.Version + "\n" }

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print weft's version",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.jsonOutput() {
				return a.printJSON(map[string]string{"version": buildinfo.Version})
			}
			_, err := io.WriteString(a.stdout, versionText())
			return err
		},
	}
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Describe the controller answering",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(s)
			}
			w := a.table()
			row(w, "Name:", s.Name)
			row(w, "Version:", s.Version)
			row(w, "Leader:", s.Leader)
			row(w, "Index:", s.Index)
			return w.Flush()
		},
	}
}
