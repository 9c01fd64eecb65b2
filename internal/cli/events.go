package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

func (a *app) eventsCommand() *cobra.Command {
	var follow bool
	var since uint64
	cmd := &cobra.Command{
		Use:   "events [-f]",
		Short: "Print what the fabric did and saw",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c := a.client()
			if !follow {
				list, err := c.Events(ctx, since)
				if err != nil {
					return err
				}
				if a.jsonOutput() {
					return a.printJSON(nonNil(list))
				}
				for _, e := range list {
					fmt.Fprintln(a.stdout, a.eventLine(e))
				}
				return nil
			}
			// Followed events print one per line as they come: a JSON object
			// per line (NDJSON) with -o json.
			err := c.FollowEvents(ctx, since, func(e api.Event) error {
				if a.jsonOutput() {
					data, err := json.Marshal(e)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(a.stdout, "%s\n", data)
					return err
				}
				_, err := fmt.Fprintln(a.stdout, a.eventLine(e))
				return err
			})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing events as they happen")
	cmd.Flags().Uint64Var(&since, "since", 0, "only events after this sequence number")
	return a.allTenantsFlag(cmd)
}

// eventLine is "12:00:01.250 info  instance.placed  hello/web node-1 hello-web-0: message";
// with -A, the tenant comes first in the subject: "tenant acme hello/web ...".
func (a *app) eventLine(e api.Event) string {
	var subject []string
	if a.allTenants && e.Tenant != "" {
		subject = append(subject, "tenant "+e.Tenant)
	}
	if e.Service != "" {
		s := e.Service
		if e.Role != "" {
			s += "/" + e.Role
		}
		subject = append(subject, s)
	}
	if e.Instance != "" {
		subject = append(subject, e.Instance)
	}
	if e.Node != "" {
		subject = append(subject, e.Node)
	}
	line := fmt.Sprintf("%s %-5s %s", e.Time.Local().Format("15:04:05.000"), e.Level, e.Type)
	if len(subject) > 0 {
		line += " " + strings.Join(subject, " ")
	}
	if e.Message != "" {
		line += ": " + e.Message
	}
	return line
}
