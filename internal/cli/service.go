package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/servicemodel"
)

func (a *app) deployCommand() *cobra.Command {
	var file string
	var opts deployOptions
	cmd := &cobra.Command{
		Use:   "deploy -f FILE [--plan] [--yes] [--wait]",
		Short: "Create or upgrade a service from its model (an upgrade rolls by update domain)",
		Long: `Create or upgrade a service from its model (an upgrade rolls by update domain).

With --plan, say what the deploy would change and change nothing: the roles whose template
changes and how, the instance counts, the instances it would replace (by update domain, in
the order it rolls them) and those it would stop.

A deploy that changes the instance count of an existing role (the model says 3 where weft
scale set 5) says so first and, on a terminal, asks before going on; --yes does not ask.`,
		Args: maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("deploy: -f FILE is required")
			}
			if opts.plan && (opts.wf.wait || opts.yes) {
				return usagef("deploy: --plan changes nothing: it takes neither --wait nor --yes")
			}
			return a.deploy(cmd.Context(), file, opts)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the service model (YAML)")
	cmd.Flags().BoolVar(&opts.plan, "plan", false, "say what the deploy would change, and change nothing")
	cmd.Flags().BoolVarP(&opts.yes, "yes", "y", false, "do not ask before changing instance counts")
	opts.wf.add(cmd)
	return cmd
}

type deployOptions struct {
	plan bool // only print the plan
	yes  bool // do not ask before a count change
	wf   waitFlags
}

func (a *app) deploy(ctx context.Context, file string, opts deployOptions) error {
	spec, dirs, err := servicemodel.Load(file)
	if err != nil {
		return err
	}
	c := a.client()
	// Roles sharing a folder share one upload. A plan uploads too: the
	// package's digest is what says whether its role changes.
	uploaded := map[string]string{}
	for _, i := range slices.Sorted(mapKeys(dirs)) {
		dir := dirs[i]
		digest, ok := uploaded[dir]
		if !ok {
			p, err := upload(ctx, c, dir)
			if err != nil {
				return fmt.Errorf("roles[%d].package: %w", i, err)
			}
			digest = p.Digest
			uploaded[dir] = digest
			fmt.Fprintf(a.stderr, "uploaded %s as %s (%d bytes)\n", dir, p.Digest, p.Size)
		}
		spec.Roles[i].Package = digest
	}
	plan, err := c.Plan(ctx, spec)
	if err != nil {
		return err
	}
	if opts.plan {
		if a.jsonOutput() {
			return a.printJSON(plan)
		}
		_, err := io.WriteString(a.stdout, planText(plan))
		return err
	}
	if err := a.confirmCounts(plan, opts.yes); err != nil {
		return err
	}
	svc, err := c.Deploy(ctx, spec)
	if err != nil {
		return err
	}
	return a.changed(ctx, c, svc, opts.wf)
}

// upload packs dir and streams it to the controller without a temporary file.
func upload(ctx context.Context, c *client.Client, dir string) (api.Package, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(pkgarchive.Pack(dir, pw)) }()
	p, err := c.UploadPackage(ctx, pr)
	pr.CloseWithError(errors.New("upload ended")) // unblocks Pack if the upload failed early
	return p, err
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// printService reports what a mutating verb got back: the object with
// -o json, else one line.
func (a *app) printService(s api.Service) error {
	if a.jsonOutput() {
		return a.printJSON(s)
	}
	// Not s.Status alone: right after a deploy or a scale the service is
	// still "stable" until the reconciler starts the rollout, while its
	// roles already say they are updating.
	line := fmt.Sprintf("service %s: version %d, %s", s.Name, s.Version, serviceStatus(s))
	if s.Message != "" {
		line += ": " + s.Message
	}
	_, err := fmt.Fprintln(a.stdout, line)
	return err
}

// waitStable polls the service and its instances until the service is stable
// with every role's current version healthy and nothing draining or being
// stopped. It prints progress to stderr when it changes, and fails when the
// service halts, a role is failing (its instances keep failing to start:
// waiting would not help) or the timeout passes.
func (a *app) waitStable(ctx context.Context, c *client.Client, name string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	last := ""
	tick := time.NewTicker(a.pollInterval)
	defer tick.Stop()
	for {
		svc, err := c.Service(ctx, name)
		if err == nil {
			var ins []api.Instance
			ins, err = c.Instances(ctx, name)
			if err == nil {
				progress, done := rollout(svc, ins)
				if progress != last {
					fmt.Fprintln(a.stderr, progress)
					last = progress
				}
				if svc.Status == api.ServiceHalted {
					msg := svc.Message
					if msg == "" {
						msg = "the upgrade halted"
					}
					return fmt.Errorf("service %s halted: %s", name, msg)
				}
				if err := failing(svc, ins); err != nil {
					return err
				}
				if done {
					return nil
				}
			}
		}
		if err != nil && ctx.Err() == nil && client.IsNotFound(err) {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("service %s not stable after %s (%s)", name, timeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// rollout describes a service's progress, one line per role (and one for an
// upgrade), and reports whether it is done.
func rollout(svc api.Service, ins []api.Instance) (string, bool) {
	var lines []string
	done := svc.Status == api.ServiceStable
	if u := svc.Upgrade; u != nil && svc.Status == api.ServiceUpgrading {
		if u.Domain < 0 {
			lines = append(lines, fmt.Sprintf("upgrading to version %d", u.ToVersion))
		} else {
			lines = append(lines, fmt.Sprintf("upgrading update domain %d of %d", u.Domain+1, u.Domains))
		}
	}
	for _, r := range svc.Spec.Roles {
		var rs api.RoleStatus
		for _, s := range svc.Roles {
			if s.Name == r.Name {
				rs = s
			}
		}
		line := fmt.Sprintf("%s: %d/%d healthy (version %d)", r.Name, rs.Healthy, r.Instances, svc.Version)
		if rs.Pending > 0 {
			line += fmt.Sprintf(", %d pending", rs.Pending)
		}
		if rs.Status == api.RoleDegraded || rs.Status == api.RoleFailing {
			line += ", " + rs.Status
		}
		// Why the role is not there yet: each waiting instance's reason.
		for _, in := range ins {
			if why := waitingFor(in); in.Role == r.Name && why != "" {
				line += fmt.Sprintf("; %s: %s", in.ID, short(why, 120))
			}
		}
		lines = append(lines, line)
		if rs.Desired != r.Instances || rs.Healthy != r.Instances {
			done = false
		}
	}
	for _, in := range ins {
		if in.Draining || in.Desired == api.DesiredStopped {
			done = false
		}
	}
	if svc.Status != api.ServiceStable && svc.Status != api.ServiceUpgrading {
		lines = append(lines, "status: "+svc.Status)
	}
	return strings.Join(lines, "; "), done
}

// waitingFor is why a live instance is not healthy yet: its last error, or
// why it is not placed; "" when it is healthy or has no reason to give.
func waitingFor(in api.Instance) string {
	switch {
	case in.Desired != api.DesiredRunning || in.Draining || (in.State == api.StateRunning && in.Health == api.HealthHealthy):
		return ""
	case in.LastError != "":
		return in.LastError
	case in.State == api.StatePending:
		return in.Message
	}
	return ""
}

// failing is the error of a service with a failing role, naming each of
// the role's instances and its last error; nil when no role is failing.
func failing(svc api.Service, ins []api.Instance) error {
	for _, rs := range svc.Roles {
		if rs.Status != api.RoleFailing {
			continue
		}
		var why []string
		for _, in := range ins {
			if in.Role == rs.Name && in.LastError != "" && waitingFor(in) != "" {
				why = append(why, fmt.Sprintf("instance %s %s", in.ID, in.LastError))
			}
		}
		if len(why) > 3 {
			why = append(why[:3], fmt.Sprintf("and %d more", len(why)-3))
		}
		return fmt.Errorf("service %s: role %s is failing: %s", svc.Name, rs.Name, strings.Join(why, "; "))
	}
	return nil
}

// short puts s on one line and cuts it to at most n characters, marking
// the cut.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// serviceStatus is what STATUS shows: the service's status, or, when that
// is stable, how its least well role fares (failing, degraded, updating).
func serviceStatus(s api.Service) string {
	if s.Status != api.ServiceStable {
		return s.Status
	}
	rank := map[string]int{api.RoleUpdating: 1, api.RoleDegraded: 2, api.RoleFailing: 3}
	st := s.Status
	for _, rs := range s.Roles {
		if rank[rs.Status] > rank[st] {
			st = rs.Status
		}
	}
	return st
}

func (a *app) servicesCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
		Use:   "services",
		Short: "List services",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Services(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NAME", "KIND", "VERSION", "STATUS", "ROLES", "UPDATED")...)
			for _, s := range list {
				// A persistent VM is a service underneath; say so, since
				// weft vm, not deploy, manages it.
				kind := "service"
				if s.Spec.IsVM() {
					kind = "vm"
				}
				row(w, a.tenantCol(s.Tenant, s.Name, kind, s.Version, serviceStatus(s), roleSummary(s), age(a.now(), s.UpdatedAt))...)
			}
			return w.Flush()
		},
	})
}

// roleSummary is "web 3/3, worker 1/1": healthy of desired, per role.
func roleSummary(s api.Service) string {
	var parts []string
	for _, r := range s.Spec.Roles {
		healthy := 0
		for _, rs := range s.Roles {
			if rs.Name == r.Name {
				healthy = rs.Healthy
			}
		}
		parts = append(parts, fmt.Sprintf("%s %d/%d", r.Name, healthy, r.Instances))
	}
	return orDash(strings.Join(parts, ", "))
}

func (a *app) serviceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Show or delete a service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft service show|delete NAME")
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a service, its roles and its rollout",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.client().Service(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(s)
			}
			return a.showService(s)
		},
	}
	var keepDrives bool
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a service and stop its instances (and delete its drives)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			del := a.client().DeleteService
			if keepDrives {
				del = a.client().DeleteServiceKeepingDrives
			}
			s, err := del(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printService(s)
		},
	}
	del.Flags().BoolVar(&keepDrives, "keep-drives", false, "keep the drives of the service's instance slots (weft drive list)")
	cmd.AddCommand(show, del)
	return cmd
}

func (a *app) showService(s api.Service) error {
	w := a.table()
	row(w, "Name:", s.Name)
	row(w, "Version:", s.Version)
	row(w, "Status:", serviceStatus(s))
	if s.Message != "" {
		row(w, "Message:", s.Message)
	}
	if u := s.Upgrade; u != nil {
		row(w, "Upgrade:", fmt.Sprintf("version %d to %d, update domain %d of %d", u.FromVersion, u.ToVersion, u.Domain+1, u.Domains))
	}
	row(w, "Upgrade domains:", s.Spec.UpgradeDomains)
	row(w, "Updated:", age(a.now(), s.UpdatedAt))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	w = a.table()
	row(w, "ROLE", "KIND", "RUNTIME", "DESIRED", "RUNNING", "HEALTHY", "PENDING", "STATUS", "ENDPOINTS")
	for _, r := range s.Spec.Roles {
		var rs api.RoleStatus
		for _, x := range s.Roles {
			if x.Name == r.Name {
				rs = x
			}
		}
		var eps []string
		for _, e := range r.Endpoints {
			eps = append(eps, fmt.Sprintf("%s %s/%d", e.Name, e.Protocol, e.Port))
		}
		row(w, r.Name, r.Kind, r.Runtime, r.Instances, rs.Running, rs.Healthy, rs.Pending, orDash(rs.Status), orDash(strings.Join(eps, ", ")))
	}
	return w.Flush()
}

// waitFlags are --wait and --timeout, shared by the verbs that change a service.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "wait until the service is stable and healthy")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 5*time.Minute, "with --wait, give up after this long")
}

// changed prints the service a verb changed and, with --wait, follows its rollout.
func (a *app) changed(ctx context.Context, c *client.Client, s api.Service, wf waitFlags) error {
	if err := a.printService(s); err != nil {
		return err
	}
	if wf.wait {
		return a.waitStable(ctx, c, s.Name, wf.timeout)
	}
	return nil
}

func (a *app) scaleCommand() *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "scale SERVICE ROLE N",
		Short: "Set how many instances of a role run",
		Args:  exactArgs("SERVICE", "ROLE", "N"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var n int
			if _, err := fmt.Sscan(args[2], &n); err != nil || fmt.Sprint(n) != args[2] {
				return usagef("scale: %q is not a number of instances", args[2])
			}
			c := a.client()
			s, err := c.Scale(cmd.Context(), args[0], args[1], n)
			if err != nil {
				return err
			}
			return a.changed(cmd.Context(), c, s, wf)
		},
	}
	wf.add(cmd)
	return cmd
}

func (a *app) rollbackCommand() *cobra.Command {
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "rollback SERVICE",
		Short: "Return a service to the version before its last upgrade",
		Args:  exactArgs("SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			s, err := c.Rollback(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.changed(cmd.Context(), c, s, wf)
		},
	}
	wf.add(cmd)
	return cmd
}
