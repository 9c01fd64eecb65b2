package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// vmExtensionCommand is `weft vm extension set|list|remove`.
func (a *app) vmExtensionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "extension",
		Short: "Set, list and remove a VM's extensions (run in the guest by its agent)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft vm extension set|list|remove")
		},
	}
	cmd.AddCommand(a.vmExtensionSetCommand(), a.vmExtensionListCommand(), a.vmExtensionRemoveCommand())
	return cmd
}

func (a *app) vmExtensionSetCommand() *cobra.Command {
	var req api.SetVMExtension
	var settings, protected string
	cmd := &cobra.Command{
		Use:   "set VM NAME [--version V] [--settings FILE] [--protected-settings FILE]",
		Short: "Add an extension to a VM, or change its version or settings",
		Long: "Add an extension to a VM, or change its version or settings. The settings files hold a JSON object.\n" +
			"Protected settings are never shown back; left out, those set before are kept.",
		Args: exactArgs("VM", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if req.Settings, err = settingsFile("--settings", settings); err != nil {
				return err
			}
			if req.ProtectedSettings, err = settingsFile("--protected-settings", protected); err != nil {
				return err
			}
			ext, err := a.client().SetVMExtension(cmd.Context(), args[0], args[1], req)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(ext)
			}
			fmt.Fprintf(a.stdout, "extension %s %s set on VM %s (weft vm extension list %s shows how it fares)\n", ext.Name, ext.Version, args[0], args[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Version, "version", "", "the version to run (default: the newest)")
	f.StringVar(&settings, "settings", "", "a file holding the public settings, a JSON object")
	f.StringVar(&protected, "protected-settings", "", "a file holding the protected settings, a JSON object")
	return cmd
}

// settingsFile reads a JSON object from path; nil when path is "".
func settingsFile(flag, path string) (map[string]any, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil || m == nil {
		if err == nil {
			err = fmt.Errorf("null")
		}
		return nil, usagef("%s: %s does not hold a JSON object: %v", flag, path, err)
	}
	return m, nil
}

func (a *app) vmExtensionListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list VM",
		Short: "List a VM's extensions and how each fares in the guest",
		Args:  exactArgs("VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			exts, err := a.client().VMExtensions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(exts))
			}
			w := a.table()
			row(w, "NAME", "VERSION", "STATUS", "HANDLER", "MESSAGE")
			for _, e := range exts {
				status, handler, msg := "-", "-", "-"
				if st := e.Status; st != nil {
					status, handler, msg = st.Status, orDash(st.Handler), orDash(oneLine(st.Message))
				}
				row(w, e.Name, e.Version, status, handler, msg)
			}
			return w.Flush()
		},
	}
}

func (a *app) vmExtensionRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove VM NAME",
		Short: "Take an extension off a VM: its disable and uninstall handlers run in the guest",
		Args:  exactArgs("VM", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().RemoveVMExtension(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "extension %s removed from VM %s\n", args[1], args[0])
			return nil
		},
	}
}

// extensionSummary is one line of weft vm show about an extension.
func extensionSummary(e api.VMExtension) string {
	s := e.Name + " " + e.Version
	if st := e.Status; st != nil {
		s += ": " + st.Status
		if st.Message != "" {
			s += " (" + oneLine(st.Message) + ")"
		}
	}
	return s
}

// figuresSummary is one line of weft vm show and weft instance show about
// the instance's figures (the monitor extension's).
func figuresSummary(f api.GuestFigures) string {
	load := ""
	if f.Load1 != nil {
		load = fmt.Sprintf(", load %.2f", *f.Load1)
	}
	return fmt.Sprintf("CPU %.1f%% of %d%s; memory %s of %s; disk %s of %s (at %s)",
		f.CPUPercent, f.CPUs, load, f.MemoryUsed, f.MemoryTotal, f.DiskUsed, f.DiskTotal, f.SampledAt.Format("15:04:05"))
}

// monitorFigures are the figures the monitor extension reports among
// statuses, or nil.
func monitorFigures(statuses []api.ExtensionStatus) *api.GuestFigures {
	for _, st := range statuses {
		if st.Figures != nil {
			return st.Figures
		}
	}
	return nil
}

// oneLine is s on one line, for a table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
