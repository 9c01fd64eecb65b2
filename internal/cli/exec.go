package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// exitCode carries a command's exit status out of an exec verb: the CLI
// exits with the code the command inside exited with.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("the command exited with code %d", int(e)) }

// execCommand is `weft exec INSTANCE -- CMD...` and `weft vm exec NAME -- CMD...`.
func (a *app) execCommand(use, short string, run func(ctx context.Context, target string, cmd []string) (api.ExecResult, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || cmd.ArgsLenAtDash() != 1 {
				return usagef("usage: %s", cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := run(cmd.Context(), args[0], args[1:])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(res)
			}
			fmt.Fprint(a.stdout, res.Stdout)
			fmt.Fprint(a.stderr, res.Stderr)
			if res.ExitCode != 0 {
				return exitCode(res.ExitCode)
			}
			return nil
		},
	}
}
