package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/pkgarchive"
)

// extensionCommand is `weft extension publish|list`.
func (a *app) extensionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "extension",
		Short: "Publish and list extensions: handlers the node agent runs inside instances",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft extension publish|list")
		},
	}
	cmd.AddCommand(a.extensionPublishCommand(), a.extensionListCommand())
	return cmd
}

func (a *app) extensionPublishCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "publish FILE|FOLDER",
		Short: "Publish an extension: a folder, or its tar.gz, with extension.json at its root",
		Args:  exactArgs("FILE|FOLDER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := extensionArchive(args[0])
			if err != nil {
				return err
			}
			ext, err := a.client().PublishExtension(cmd.Context(), body)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(ext)
			}
			fmt.Fprintf(a.stdout, "extension %s %s published (%s)\n", ext.Name, ext.Version, ext.Package)
			return nil
		},
	}
}

// extensionArchive reads an archive, or packs a folder as a role's
// package is packed.
func extensionArchive(path string) (io.Reader, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		data, err := os.ReadFile(path)
		return bytes.NewReader(data), err
	}
	var buf bytes.Buffer
	if err := pkgarchive.Pack(path, &buf); err != nil {
		return nil, err
	}
	return &buf, nil
}

func (a *app) extensionListCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List the extensions this tenant may use (its own, the default tenant's, the built-in ones)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			exts, err := a.client().Extensions(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(exts))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NAME", "VERSION", "HANDLERS", "SETTINGS", "PUBLISHED")...)
			for _, e := range exts {
				published := "built-in"
				if !e.BuiltIn {
					published = age(a.now(), e.PublishedAt)
				}
				row(w, a.tenantCol(orDash(e.Tenant), e.Name, e.Version, handlerNames(e.Handlers), settingNames(e.Settings), published)...)
			}
			return w.Flush()
		},
	})
}

func handlerNames(h api.ExtensionHandlers) string {
	var names []string
	for _, x := range []struct {
		name string
		cmd  []string
	}{{"install", h.Install}, {"enable", h.Enable}, {"disable", h.Disable}, {"update", h.Update}, {"uninstall", h.Uninstall}} {
		if len(x.cmd) > 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

func settingNames(s api.ExtensionSchema) string {
	var names []string
	for k := range s.Public {
		names = append(names, k)
	}
	for k := range s.Protected {
		names = append(names, k+"*")
	}
	if len(names) == 0 {
		return "-"
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}
