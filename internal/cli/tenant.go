package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// tenantCommand is `weft tenant create|list|show|delete|quota set` (the
// operator's).
func (a *app) tenantCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tenant",
		Short: "Manage the hoster's customers, their quotas and public ports (the operator's)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft tenant create|list|show|delete|quota set")
		},
	}
	var qf quotaFlags
	create := &cobra.Command{
		Use:   "create NAME [--cpu N] [--memory SIZE] [...] [--ports FROM-TO]",
		Short: "Create a tenant",
		Long: `Creates a tenant with the server's default quota for new tenants; the quota flags given replace
those limits (a value "unlimited" lifts one), the others keep their defaults.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := qf.parse(cmd)
			if err != nil {
				return err
			}
			req := api.CreateTenant{Name: args[0]}
			if set.Ports != nil {
				req.Ports, set.Ports = *set.Ports, nil
			}
			if qf.anyQuota(cmd) {
				req.QuotaChanges = &set
			}
			t, err := a.client().CreateTenant(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printTenant(t)
		},
	}
	qf.add(create)
	list := &cobra.Command{
		Use:   "list",
		Short: "List tenants with what each uses of its quota",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Tenants(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(list))
			}
			w := a.table()
			row(w, "NAME", "CPU", "MEMORY", "INSTANCES", "VMS", "DISK", "STORAGE", "ENDPOINTS", "PORTS")
			for _, t := range list {
				cols := []any{t.Name}
				for _, q := range quotaRows(t) {
					cols = append(cols, q.used+"/"+q.allowed)
				}
				row(w, append(cols, t.Ports)...)
			}
			return w.Flush()
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a tenant, its quota and what it uses",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.client().Tenant(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printTenant(t)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a tenant that owns nothing, and its tokens",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := a.client().DeleteTenant(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(t)
			}
			_, err = fmt.Fprintf(a.stdout, "tenant %s: deleted\n", t.Name)
			return err
		},
	}
	quota := &cobra.Command{
		Use:   "quota",
		Short: "Change a tenant's quota",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft tenant quota set NAME [--cpu N] [--memory SIZE] [...] [--ports FROM-TO]")
		},
	}
	var sf quotaFlags
	set := &cobra.Command{
		Use:   "set NAME [--cpu N] [--memory SIZE] [--instances N] [--vms N] [--disk SIZE] [--storage SIZE] [--endpoints N] [--ports FROM-TO]",
		Short: "Change some of a tenant's limits (a value \"unlimited\" lifts one) or its public ports",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := sf.parse(cmd)
			if err != nil {
				return err
			}
			if !sf.anyQuota(cmd) && req.Ports == nil {
				return usagef("tenant quota set: give at least one limit to change (--cpu, --memory, --instances, --vms, --disk, --storage, --endpoints) or --ports")
			}
			t, err := a.client().SetQuota(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return a.printTenant(t)
		},
	}
	sf.add(set)
	quota.AddCommand(set)
	cmd.AddCommand(create, list, show, del, quota)
	return cmd
}

// quotaFlags are the flags of tenant create and tenant quota set: one per
// limit, each a value or "unlimited", and --ports.
type quotaFlags struct {
	values map[string]*string // by the limit's name (quotaNames)
	ports  string
}

// quotaNames are the limits of api.Quota, as flags and api.SetQuota's
// Unlimited name them, with what their values are and how one is set.
var quotaNames = []struct {
	name, help string
	set        func(q *api.Quota, v string) error
}{
	{"cpu", "cores of running instances (e.g. 8, 0.5)", func(q *api.Quota, v string) (err error) {
		q.CPU, err = parseLimit(v, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) })
		return err
	}},
	{"memory", "memory of running instances (e.g. 16Gi)", func(q *api.Quota, v string) (err error) {
		q.Memory, err = parseLimit(v, api.ParseBytes)
		return err
	}},
	{"instances", "instances of services and VMs", func(q *api.Quota, v string) (err error) {
		q.Instances, err = parseLimit(v, strconv.Atoi)
		return err
	}},
	{"vms", "persistent VMs", func(q *api.Quota, v string) (err error) {
		q.VMs, err = parseLimit(v, strconv.Atoi)
		return err
	}},
	{"disk", "persistent VMs' disks, by declared size (e.g. 200Gi)", func(q *api.Quota, v string) (err error) {
		q.Disk, err = parseLimit(v, api.ParseBytes)
		return err
	}},
	{"storage", "bytes in the tenant's storage accounts (e.g. 100Gi)", func(q *api.Quota, v string) (err error) {
		q.Storage, err = parseLimit(v, api.ParseBytes)
		return err
	}},
	{"endpoints", "published (load-balanced) endpoints", func(q *api.Quota, v string) (err error) {
		q.Endpoints, err = parseLimit(v, strconv.Atoi)
		return err
	}},
}

// parseLimit reads a limit that is not "unlimited": a number, not negative.
func parseLimit[T int | float64 | api.Bytes](v string, parse func(string) (T, error)) (*T, error) {
	n, err := parse(v)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%q is not a limit (a number, not negative) or unlimited", v)
	}
	return &n, nil
}

func (q *quotaFlags) add(cmd *cobra.Command) {
	q.values = map[string]*string{}
	for _, n := range quotaNames {
		q.values[n.name] = cmd.Flags().String(n.name, "", "limit on "+n.help+", or unlimited")
	}
	cmd.Flags().StringVar(&q.ports, "ports", "", "the public ports the tenant may publish, FROM-TO (e.g. 31000-31009), or none")
}

// anyQuota reports whether a limit's flag was given.
func (q *quotaFlags) anyQuota(cmd *cobra.Command) bool {
	for _, n := range quotaNames {
		if cmd.Flags().Changed(n.name) {
			return true
		}
	}
	return false
}

// parse reads the flags given into a quota change: the limits set, those
// made unlimited, and the ports (nil without --ports).
func (q *quotaFlags) parse(cmd *cobra.Command) (api.SetQuota, error) {
	var req api.SetQuota
	for _, n := range quotaNames {
		if !cmd.Flags().Changed(n.name) {
			continue
		}
		v := strings.TrimSpace(*q.values[n.name])
		if v == "unlimited" {
			req.Unlimited = append(req.Unlimited, n.name)
			continue
		}
		if err := n.set(&req.Quota, v); err != nil {
			return req, usagef("--%s: %v", n.name, err)
		}
	}
	if cmd.Flags().Changed("ports") {
		r, err := parsePorts(q.ports)
		if err != nil {
			return req, usagef("--ports: %v", err)
		}
		req.Ports = &r
	}
	return req, nil
}

// parsePorts reads "31000-31009", "31000" (one port) or "none".
func parsePorts(s string) (api.PortRange, error) {
	if s == "none" {
		return api.PortRange{}, nil
	}
	from, to, isRange := strings.Cut(s, "-")
	if !isRange {
		to = from
	}
	f, err1 := strconv.Atoi(from)
	t, err2 := strconv.Atoi(to)
	if err1 != nil || err2 != nil || f < 1 || t > 65535 || f > t {
		return api.PortRange{}, fmt.Errorf("%q is not a range of ports FROM-TO (1-65535) or none", s)
	}
	return api.PortRange{From: f, To: t}, nil
}

// quotaRow is one limit of a tenant: what it uses and what it may.
type quotaRow struct{ name, used, allowed string }

// quotaRows are a tenant's limits in quotaNames' order; a nil limit is
// "unlimited".
func quotaRows(t api.Tenant) []quotaRow {
	cores := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	q, u := t.Quota, t.Used
	return []quotaRow{
		{"cpu", cores(u.CPU), limit(q.CPU, cores)},
		{"memory", u.Memory.String(), limit(q.Memory, api.Bytes.String)},
		{"instances", strconv.Itoa(u.Instances), limit(q.Instances, strconv.Itoa)},
		{"vms", strconv.Itoa(u.VMs), limit(q.VMs, strconv.Itoa)},
		{"disk", u.Disk.String(), limit(q.Disk, api.Bytes.String)},
		{"storage", u.Storage.String(), limit(q.Storage, api.Bytes.String)},
		{"endpoints", strconv.Itoa(u.Endpoints), limit(q.Endpoints, strconv.Itoa)},
	}
}

func limit[T any](v *T, format func(T) string) string {
	if v == nil {
		return "unlimited"
	}
	return format(*v)
}

// printTenant shows one tenant: the object with -o json, else its limits
// one per line.
func (a *app) printTenant(t api.Tenant) error {
	if a.jsonOutput() {
		return a.printJSON(t)
	}
	w := a.table()
	row(w, "Name:", t.Name)
	row(w, "Ports:", t.Ports)
	row(w, "Created:", stamp(t.CreatedAt))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(a.stdout)
	w = a.table()
	row(w, "QUOTA", "USED", "ALLOWED")
	for _, q := range quotaRows(t) {
		row(w, q.name, q.used, q.allowed)
	}
	return w.Flush()
}
