package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
)

// loginCommand is `weft login [--addr URL] [--token TOKEN]`.
func (a *app) loginCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "login [--addr URL] [--token TOKEN]",
		Short: "Sign in: keep a token for an API address and make it the default address",
		Long: `Reads the token from --token, WEFT_TOKEN or one line on stdin (asked for, without echo, when stdin is
a terminal), checks it with the API, and keeps it and the address in the user's config folder
(weft/tokens.json, readable by the user only). Later commands call that address when neither --addr nor
WEFT_ADDR names one, with that token unless --token or WEFT_TOKEN gives one.`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.token == "" {
				tok, err := a.readToken()
				if err != nil {
					return err
				}
				a.token = tok
			}
			addr := a.address()
			who, err := a.client().WhoAmI(cmd.Context())
			if err != nil {
				return fmt.Errorf("login: %s: %w", addr, err)
			}
			if err := client.SaveLogin(addr, a.token); err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(who)
			}
			_, err = fmt.Fprintf(a.stdout, "signed in to %s as %s\n", addr, describe(who))
			return err
		},
	}
}

// readToken reads one line from stdin: after a prompt, and without echo,
// when it is a terminal.
func (a *app) readToken() (string, error) {
	if f, ok := a.stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(a.stderr, "API token: ")
		defer fmt.Fprintln(a.stderr)
		restore, err := noEcho(f)
		if err != nil {
			return "", fmt.Errorf("login: %w", err)
		}
		defer restore()
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("login: read the token: %w", err)
	}
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", usagef("login: no token: give --token, WEFT_TOKEN or a line on stdin")
	}
	return tok, nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// noEcho turns the terminal's echo off, and returns what turns it back.
func noEcho(f *os.File) (func(), error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// logoutCommand is `weft logout [--addr URL]`.
func (a *app) logoutCommand() *cobra.Command {
	var revoke bool
	cmd := &cobra.Command{
		Use:   "logout [--addr URL] [--revoke]",
		Short: "Forget the token kept for an API address",
		Long: "Forget the token kept for an API address. The token stays valid until it expires, " +
			"unless --revoke revokes it first on every server (as `weft token revoke ID` does).",
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := a.address()
			if revoke {
				tok := client.SavedToken(addr)
				if tok == "" {
					return fmt.Errorf("logout: no token is kept for %s", addr)
				}
				if err := client.New(addr).WithToken(tok).EndSession(cmd.Context()); err != nil {
					return fmt.Errorf("logout: revoke the token: %w", err)
				}
			}
			found, err := client.ForgetToken(addr)
			if err != nil {
				return err
			}
			if !found {
				return fmt.Errorf("logout: no token is kept for %s", addr)
			}
			if revoke {
				_, err = fmt.Fprintf(a.stdout, "signed out of %s; the token is revoked\n", addr)
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "signed out of %s\n", addr)
			return err
		},
	}
	cmd.Flags().BoolVar(&revoke, "revoke", false, "revoke the token on the servers too")
	return cmd
}

// whoamiCommand is `weft whoami`.
func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Print who the API takes you for",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			who, err := a.client().WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(who)
			}
			_, err = fmt.Fprintf(a.stdout, "%s at %s\n", describe(who), a.address())
			return err
		},
	}
}

// describe is "tenant acme (owner)", "the operator" or "server s1", and
// the token's ID when it has one.
func describe(w api.WhoAmI) string {
	var s string
	switch w.Role {
	case "tenant":
		s = fmt.Sprintf("tenant %s (%s)", w.Tenant, w.Access)
	case api.AccessOperator:
		s = "the operator"
	default:
		s = w.Description
	}
	if w.Token != "" {
		s += ", token " + w.Token
	}
	return s
}
