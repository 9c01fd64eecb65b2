// Package cli is the weft command line: the daemons (server, agent, storage,
// dev) and the client verbs. Client verbs talk to the controller only through
// package client; every read verb prints a table for people or, with
// -o json, the API's JSON for scripts. Errors are one line on stderr.
package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/buildinfo"
	"github.com/weftcloud/weft/internal/driveproc"
	"github.com/weftcloud/weft/internal/guest"
	"github.com/weftcloud/weft/internal/pki"
	"github.com/weftcloud/weft/internal/shim"
)

// Main runs the command line and returns the exit code: 0 on success, 1 when
// the command failed, 2 when it was used wrongly.
func Main(args []string) int {
	// The shim is exec'd by the agent with a fixed argument list; keep it
	// clear of flag parsing and of everything else the CLI sets up.
	if len(args) > 0 && args[0] == "shim" {
		return shim.Main(args[1:])
	}
	// So is a drive's server (internal/driveproc), started by the agent.
	if len(args) > 0 && args[0] == "drive-serve" {
		return driveproc.Main(args[1:])
	}
	// So is the guest agent, which may run as PID 1 inside a VM.
	if len(args) > 0 && args[0] == "guest" {
		return guest.Main(args)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// app holds what every command shares.
type app struct {
	addr   string
	token  string
	caCert string
	output string
	// tenant is the tenant the operator acts in (--tenant); allTenants,
	// a list verb's -A: every tenant's objects.
	tenant     string
	allTenants bool
	stdin      io.Reader // weft login reads a token from it
	stdout     io.Writer
	stderr     io.Writer
	now        func() time.Time // injected so golden tables are stable

	pollInterval time.Duration // --wait polling
}

// usageError marks an error as the user's misuse of a command (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run executes one command line with the given streams.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return newApp(stdout, stderr).execute(ctx, args)
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{stdin: os.Stdin, stdout: stdout, stderr: stderr, now: time.Now, pollInterval: 250 * time.Millisecond}
}

// execute runs one command line and returns its exit code; tests call it
// with a fixed clock.
func (a *app) execute(ctx context.Context, args []string) int {
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code) // the command inside said what went wrong
	}
	msg := strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " "))
	fmt.Fprintf(a.stderr, "weft: %s\n", msg)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return 2
	}
	return 1
}

// isCobraUsage recognises the errors cobra makes itself for bad command lines.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "Weft: a self-hosted cloud in one binary",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.allTenants && a.tenant != "" {
				return usagef("--tenant and --all-tenants: list one tenant's objects or every tenant's, not both")
			}
			switch {
			case a.output == "table", a.output == "json":
				return nil
			case a.output == "csv" && cmd.Annotations[csvOutput] != "":
				return nil
			}
			return usagef("--output: %q is not table or json", a.output)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	// --version prints what `weft version` does.
	root.Version = buildinfo.Version
	root.SetVersionTemplate(versionText())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.addr, "addr", os.Getenv("WEFT_ADDR"), "controller address(es), comma-separated (env WEFT_ADDR; default: the address of weft login, else "+client.DefaultAddr+")")
	root.PersistentFlags().StringVar(&a.token, "token", os.Getenv("WEFT_TOKEN"), "API token (env WEFT_TOKEN; default: the one weft login or the local server kept for the address)")
	root.PersistentFlags().StringVar(&a.tenant, "tenant", os.Getenv("WEFT_TENANT"), "the tenant to act in: the operator's (env WEFT_TENANT)")
	root.PersistentFlags().StringVar(&a.caCert, "ca-cert", os.Getenv("WEFT_CA_CERT"), "the cluster's CA certificate, to check https servers (env WEFT_CA_CERT)")
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table or json (csv too where a command says so)")

	root.AddCommand(
		a.serverCommand(), a.agentCommand(), a.storageCommand(), a.devCommand(), shimCommand(),
		a.deployCommand(), a.servicesCommand(), a.serviceCommand(), a.scaleCommand(), a.rollbackCommand(),
		a.instancesCommand(), a.instanceCommand(), a.logsCommand(),
		a.execCommand("exec INSTANCE -- COMMAND [ARGS...]", "Run a command inside an instance (container and vm runtimes)",
			func(ctx context.Context, id string, cmd []string) (api.ExecResult, error) {
				return a.client().Exec(ctx, id, cmd)
			}),
		a.nodesCommand(), a.nodeCommand(),
		a.imageCommand(), a.extensionCommand(), a.vmCommand(), a.driveCommand(), a.networkCommand(), a.operatorCommand(), a.tlsCommand(),
		a.eventsCommand(), a.versionCommand(), a.statusCommand(),
		a.usageCommand(), a.ratecardCommand(), a.billCommand(),
		a.tenantCommand(), a.tokenCommand(), a.signInLinkCommand(), a.auditCommand(),
		a.loginCommand(), a.logoutCommand(), a.whoamiCommand(), a.topCommand(),
	)
	return root
}

// aliases keeps the old spellings of cmd's flags working: each key of old
// is read as the flag its value names, and --help shows the new name only.
// One idea has one flag name everywhere (--cpu, --disk-size, --addr,
// --host); the others were spellings of it some commands had.
func aliases(cmd *cobra.Command, old map[string]string) {
	cmd.Flags().SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if n, ok := old[name]; ok {
			name = n
		}
		return pflag.NormalizedName(name)
	})
}

// address is the API address to call: --addr or WEFT_ADDR, else the one
// weft login signed in to, else the local default.
func (a *app) address() string {
	if a.addr != "" {
		return a.addr
	}
	if cur := client.CurrentAddr(); cur != "" {
		return cur
	}
	return client.DefaultAddr
}

func (a *app) client() *client.Client {
	c := client.New(a.address()).WithToken(a.token)
	switch {
	case a.allTenants:
		c.WithTenant(api.AllTenants)
	case a.tenant != "":
		c.WithTenant(a.tenant)
	}
	if a.caCert != "" {
		pool, err := pki.LoadCA(a.caCert)
		if err != nil {
			fmt.Fprintln(a.stderr, "weft:", err) // requests then fail on the unknown CA
			return c
		}
		c.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return c
}

// allTenantsFlag gives a list verb -A/--all-tenants.
func (a *app) allTenantsFlag(cmd *cobra.Command) *cobra.Command {
	cmd.Flags().BoolVarP(&a.allTenants, "all-tenants", "A", false, "list every tenant's objects (the operator's), with a TENANT column")
	return cmd
}

// tenantCol puts a TENANT column first in a list table when -A lists every
// tenant's objects; otherwise the table is as it always was.
func (a *app) tenantCol(tenant string, cols ...any) []any {
	if !a.allTenants {
		return cols
	}
	return append([]any{tenant}, cols...)
}

func (a *app) jsonOutput() bool { return a.output == "json" }

// printJSON writes v indented, as the API answers it.
func (a *app) printJSON(v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", data)
	return err
}

// table returns a tabwriter over stdout; the caller flushes it.
func (a *app) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
}

// row writes one tab-separated line.
func row(w io.Writer, cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, c)
	}
	fmt.Fprintln(w)
}

// orDash shows empty cells as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

// exactArgs is cobra.ExactArgs with a usage error and the argument names.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("usage: %s", cmd.UseLine())
		}
		return nil
	}
}

// maxArgs allows at most n arguments.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("usage: %s", cmd.UseLine())
		}
		return nil
	}
}

// stamp writes a time for tables: UTC, to the minute.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// age writes how long ago t was, coarsely.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
