package cli

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// tokenCommand is `weft token create|list|revoke`: a tenant's owner manages
// its own tenant's tokens; the operator any tenant's (--tenant) and
// operator tokens.
func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft token create|list|revoke")
		},
	}
	var req api.CreateToken
	create := &cobra.Command{
		Use:   "create --tenant NAME --role owner|contributor|reader|operator [--expires 720h] [--description TEXT]",
		Short: "Create a token of a tenant (or, without --tenant, an operator token); it is shown once",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Role == "" {
				return usagef("token create: --role is required (owner, contributor, reader or operator)")
			}
			req.Tenant = a.tenant
			tok, err := a.client().CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(tok)
			}
			// The token alone on stdout, for TOKEN=$(weft token create ...).
			fmt.Fprintln(a.stdout, tok.Token)
			fmt.Fprintf(a.stderr, "token %s: %s, %s, expires %s\n", tok.ID, grantee(tok.Tenant, tok.Role), tok.Role, stamp(tok.Expires))
			fmt.Fprintln(a.stderr, "it is shown only now: keep it (weft login --token, or WEFT_TOKEN)")
			return nil
		},
	}
	create.Flags().StringVar(&req.Role, "role", "", "owner, contributor, reader or operator")
	create.Flags().StringVar(&req.Expires, "expires", "", "how long it lives (default 720h)")
	create.Flags().StringVar(&req.Description, "description", "", "what it is for")
	list := a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List a tenant's tokens (the operator: -A for every token)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Tokens(cmd.Context())
			if err != nil {
				return err
			}
			// The API lists tokens by their random IDs; people read them
			// oldest first.
			slices.SortStableFunc(list, func(x, y api.Token) int { return x.CreatedAt.Compare(y.CreatedAt) })
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, "ID", "TENANT", "ROLE", "EXPIRES", "DESCRIPTION", "CREATED BY")
			for _, t := range list {
				row(w, t.ID, orDash(t.Tenant), t.Role, stamp(t.Expires), orDash(short(t.Description, 40)), orDash(t.CreatedBy))
			}
			return w.Flush()
		},
	})
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token: every server refuses it from then on",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.client().RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(t)
			}
			_, err = fmt.Fprintf(a.stdout, "token %s: revoked\n", t.ID)
			return err
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// grantee names who a token or link acts for.
func grantee(tenant, role string) string {
	if tenant == "" {
		return "the operator"
	}
	return "tenant " + tenant
}

// signInLinkCommand is `weft signin-link [--tenant T] [--role owner]`.
func (a *app) signInLinkCommand() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "signin-link [--tenant T] [--role owner|contributor|reader]",
		Short: "Print a one-time link that signs in to the portal (to give a customer)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			link, err := a.client().CreateSignInLink(cmd.Context(), api.CreateSignInLink{Tenant: a.tenant, Role: role})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(link)
			}
			fmt.Fprintln(a.stdout, link.URL)
			fmt.Fprintf(a.stderr, "signs in once as %s (%s), until %s\n", grantee(link.Tenant, link.Role), link.Role, stamp(link.Expires))
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", api.AccessOwner, "owner, contributor or reader (operator: the operator, without --tenant)")
	return cmd
}
