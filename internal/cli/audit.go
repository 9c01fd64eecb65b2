package cli

import (
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// auditCommand is `weft audit [--since RFC3339] [--limit N]` (the operator's).
func (a *app) auditCommand() *cobra.Command {
	var since string
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--since TIME] [--limit N]",
		Short: "Print the changes made through the API: who, from where, what, when (the operator's)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if since != "" {
				if _, err := time.Parse(time.RFC3339, since); err != nil {
					return usagef("--since: %q is not an RFC 3339 time (2026-12-01T10:00:00Z)", since)
				}
				q.Set("since", since)
			}
			if limit < 0 {
				return usagef("--limit: %d is negative", limit)
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			list, err := a.client().Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, "TIME", "WHO", "FROM", "METHOD", "PATH", "TENANT", "STATUS")
			for _, e := range list {
				row(w, e.Time.UTC().Format("2006-01-02 15:04:05"), e.Who, orDash(e.From), e.Method, e.Path, orDash(e.Tenant), e.Status)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only changes at or after this time (RFC 3339)")
	cmd.Flags().IntVar(&limit, "limit", 0, "only the newest N (default: the server's, 1000)")
	return cmd
}
