package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/weftcloud/weft/api"
)

// planText is the plan of a deploy for people: a line for the service, and
// for each role a line marked as `nomad job plan` marks them (+ create,
// - destroy, ~ update or scale, = no change) with what changes under it.
func planText(p api.Plan) string {
	var b strings.Builder
	switch {
	case p.Create:
		fmt.Fprintf(&b, "+ service %s: new, version %d\n", p.Service, p.NewVersion)
	case p.NewVersion != p.Version:
		fmt.Fprintf(&b, "~ service %s: version %d -> %d\n", p.Service, p.Version, p.NewVersion)
	case planChanges(p):
		fmt.Fprintf(&b, "~ service %s: version %d stays (only instance counts change)\n", p.Service, p.Version)
	default:
		fmt.Fprintf(&b, "= service %s: no change (version %d)\n", p.Service, p.Version)
	}
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "    %s\n", fieldChange(c))
	}
	for _, r := range p.Roles {
		mark, what := "~", ""
		switch r.Action {
		case api.PlanCreate:
			mark, what = "+", "create, "+instances(r.To)
		case api.PlanDestroy:
			mark, what = "-", fmt.Sprintf("destroy, %d -> 0 instances", r.From)
		case api.PlanUpdate:
			what = "update"
			if r.From != r.To {
				what += fmt.Sprintf(", %d -> %d instances", r.From, r.To)
			} else {
				what += ", " + instances(r.To)
			}
		case api.PlanScale:
			what = fmt.Sprintf("scale, %d -> %d instances", r.From, r.To)
		default:
			mark, what = "=", "no change, "+instances(r.To)
		}
		fmt.Fprintf(&b, "  %s role %s: %s\n", mark, r.Name, what)
		for _, c := range r.Changes {
			fmt.Fprintf(&b, "      %s\n", fieldChange(c))
		}
		if len(r.Stops) > 0 {
			fmt.Fprintf(&b, "      stops %s\n", strings.Join(r.Stops, ", "))
		}
		if len(r.MakesDrives) > 0 {
			fmt.Fprintf(&b, "      makes drives %s\n", strings.Join(r.MakesDrives, ", "))
		}
		if len(r.KeepsDrives) > 0 {
			fmt.Fprintf(&b, "      keeps drives %s\n", strings.Join(r.KeepsDrives, ", "))
		}
		if len(r.Restarts) > 0 {
			b.WriteString("      replaces, one update domain at a time:\n")
			for _, d := range r.Restarts {
				fmt.Fprintf(&b, "        update domain %d of %d: %s\n", d.Domain+1, max(p.Domains, d.Domain+1), strings.Join(d.Instances, ", "))
			}
		}
	}
	return b.String()
}

// planChanges reports whether a plan changes anything at all.
func planChanges(p api.Plan) bool {
	if p.Create || p.NewVersion != p.Version || len(p.Changes) > 0 {
		return true
	}
	for _, r := range p.Roles {
		if r.Action != api.PlanNone || len(r.Stops) > 0 || len(r.Restarts) > 0 || len(r.MakesDrives) > 0 {
			return true
		}
	}
	return false
}

func instances(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return fmt.Sprintf("%d instances", n)
}

// fieldChange is one changed field: "settings.VERSION: "1" -> "2"".
func fieldChange(c api.FieldChange) string {
	value := func(v string) string {
		if v == "" {
			return "(none)"
		}
		return short(v, 60)
	}
	return fmt.Sprintf("%s: %s -> %s", c.Field, value(c.Old), value(c.New))
}

// countChanges are the lines saying which existing roles' instance counts
// a deploy changes (the model's counts win over weft scale's).
func countChanges(p api.Plan) []string {
	var lines []string
	for _, r := range p.Roles {
		if (r.Action != api.PlanUpdate && r.Action != api.PlanScale) || r.From == r.To {
			continue
		}
		line := fmt.Sprintf("%s/%s: %d -> %d instances, as the model says", p.Service, r.Name, r.From, r.To)
		if len(r.Stops) > 0 {
			line += " (stops " + strings.Join(r.Stops, ", ") + ")"
		}
		lines = append(lines, line)
	}
	return lines
}

// errNotConfirmed: the person at the terminal did not answer yes.
var errNotConfirmed = errors.New("deploy: not confirmed; nothing was changed")

// confirmCounts says which instance counts the deploy changes and, when
// stdin is a terminal and yes is not given, asks whether to go on. In a
// script (stdin not a terminal) it only says so: asking would hang it.
func (a *app) confirmCounts(p api.Plan, yes bool) error {
	lines := countChanges(p)
	if len(lines) == 0 {
		return nil
	}
	for _, l := range lines {
		fmt.Fprintln(a.stderr, l)
	}
	f, ok := a.stdin.(*os.File)
	if yes || !ok || !isTerminal(f) {
		return nil
	}
	fmt.Fprint(a.stderr, "Deploy these counts? [y/N] ")
	answer, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("deploy: read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errNotConfirmed
}
