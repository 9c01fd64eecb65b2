package fabric

import (
	"context"
	"fmt"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/tenants"
)

// tenant returns a tenant with its quota; without a tenant store every
// tenant exists and has none.
func (c *Controller) tenant(name string) (api.Tenant, error) {
	if name == "" || name == api.AllTenants {
		return api.Tenant{}, api.Errorf(api.CodeInvalid, "tenant: name the tenant to act in")
	}
	if c.cfg.Tenants == nil {
		return api.Tenant{Name: name}, nil
	}
	return c.cfg.Tenants.Get(name)
}

// Usage is what a tenant's services, VMs and drives take now, counted as
// quotas are (Storage is the storage service's, not counted here).
func (c *Controller) Usage(tenant string) api.Usage {
	var u api.Usage
	for _, svc := range list[serviceRecord](c.store, state.KindServices, tenantPrefix(tenant)) {
		u = add(u, svc.charge())
	}
	for _, d := range list[api.Drive](c.store, state.KindDrives, tenantPrefix(tenant)) {
		u.Disk += d.Size
	}
	return u
}

// charge is what a service counts against its tenant's quota: its model,
// and while a rolling upgrade is under way the larger of its model and the
// one it upgrades from, since instances of both run until it ends.
func (r *serviceRecord) charge() api.Usage {
	u := charge(r.Spec)
	if r.Status == api.ServiceUpgrading && len(r.Revisions) > 0 {
		u = maxUsage(u, charge(r.Revisions[len(r.Revisions)-1].Spec))
	}
	return u
}

// charge counts a model in the quota's terms.
func charge(spec api.ServiceSpec) api.Usage {
	var u api.Usage
	if spec.IsVM() {
		u.VMs = 1
	}
	for _, r := range spec.Roles {
		n := r.Instances
		u.Instances += n
		u.CPU += float64(n) * r.Size.CPU
		u.Memory += api.Bytes(n) * r.Size.Memory
		for _, d := range r.Disks {
			u.Disk += d.Size
		}
		if published(r) {
			u.Endpoints += len(r.Endpoints)
		}
	}
	return u
}

func add(a, b api.Usage) api.Usage {
	return api.Usage{
		CPU: a.CPU + b.CPU, Memory: a.Memory + b.Memory, Instances: a.Instances + b.Instances,
		VMs: a.VMs + b.VMs, Disk: a.Disk + b.Disk, Storage: a.Storage + b.Storage, Endpoints: a.Endpoints + b.Endpoints,
	}
}

func maxUsage(a, b api.Usage) api.Usage {
	return api.Usage{
		CPU: max(a.CPU, b.CPU), Memory: max(a.Memory, b.Memory), Instances: max(a.Instances, b.Instances),
		VMs: max(a.VMs, b.VMs), Disk: max(a.Disk, b.Disk), Storage: max(a.Storage, b.Storage), Endpoints: max(a.Endpoints, b.Endpoints),
	}
}

// tenantUnchanged is a check that the tenant's record is as Deploy read
// it: a service is never stored for a tenant deleted meanwhile, nor
// against a quota changed meanwhile. The default tenant, which cannot be
// deleted and has no quota, needs none.
func (c *Controller) tenantUnchanged(tenant string) ([]state.Op, error) {
	if c.cfg.Tenants == nil || tenant == api.DefaultTenant {
		return nil, nil
	}
	e, ok := c.store.Get(tenants.KindTenants, tenant)
	if !ok {
		return nil, api.Errorf(api.CodeNotFound, "no tenant named %s", tenant)
	}
	return []state.Op{{Kind: tenants.KindTenants, Key: tenant, Check: true, Rev: e.Rev}}, nil
}

// CheckQuota is checkQuota for a tenant by name: callers that must make
// something before they deploy (a VM's disks) ask it first.
func (c *Controller) CheckQuota(tenant string, old, new api.ServiceSpec) error {
	t, err := c.tenant(tenant)
	if err != nil {
		return err
	}
	return c.checkQuota(t, old, new)
}

// CheckDiskQuota refuses a new drive of size bytes when the tenant's disk
// quota cannot hold it (drives and VM disks count alike).
func (c *Controller) CheckDiskQuota(tenant string, size api.Bytes) error {
	disk := api.ServiceSpec{Roles: []api.RoleSpec{{Disks: []api.DiskSpec{{Size: size}}}}}
	return c.CheckQuota(tenant, api.ServiceSpec{}, disk)
}

// checkQuota refuses to replace a service's model old (zero for a new
// service) by new when the tenant's quota cannot hold it. What new asks is
// what it adds to what old takes; during the rolling upgrade that follows
// both models' instances run, so the larger of the two counts until it
// ends (serviceRecord.charge). Asking for nothing more is never refused,
// even by a tenant already over a quota lowered since.
func (c *Controller) checkQuota(t api.Tenant, old, new api.ServiceSpec) error {
	q := t.Quota
	if q == (api.Quota{}) {
		return nil
	}
	used := c.Usage(t.Name)
	before := charge(old)
	after := maxUsage(before, charge(new))
	var over []string
	check := func(name string, used, asked, limit float64, format func(float64) string) {
		if asked > 0 && used+asked > limit {
			over = append(over, fmt.Sprintf("%s %s used + %s asked > %s allowed", name, format(used), format(asked), format(limit)))
		}
	}
	count := func(v float64) string { return fmt.Sprintf("%g", v) }
	bytes := func(v float64) string { return api.Bytes(v).String() }
	if q.CPU != nil {
		check("cpu", used.CPU, after.CPU-before.CPU, *q.CPU, count)
	}
	if q.Memory != nil {
		check("memory", float64(used.Memory), float64(after.Memory-before.Memory), float64(*q.Memory), bytes)
	}
	if q.Instances != nil {
		check("instances", float64(used.Instances), float64(after.Instances-before.Instances), float64(*q.Instances), count)
	}
	if q.VMs != nil {
		check("vms", float64(used.VMs), float64(after.VMs-before.VMs), float64(*q.VMs), count)
	}
	if q.Disk != nil {
		check("disk", float64(used.Disk), float64(after.Disk-before.Disk), float64(*q.Disk), bytes)
	}
	if q.Endpoints != nil {
		check("endpoints", float64(used.Endpoints), float64(after.Endpoints-before.Endpoints), float64(*q.Endpoints), count)
	}
	if len(over) > 0 {
		return api.Errorf(api.CodeForbidden, "quota exceeded: %s (tenant %s; the operator raises it with weft tenant quota set)", strings.Join(over, "; "), t.Name)
	}
	return nil
}

// publishedPorts maps every port another service publishes to a
// description of it (another tenant's services are not named). Every
// deploy asks, so it reads the services as last decoded: decoding 1,000
// services' models was most of a deploy.
func (c *Controller) publishedPorts(self, tenant string) map[int]string {
	used := map[int]string{}
	services, _ := c.svcCache.list(c.store, state.KindServices) // shared: read only
	for _, other := range services {
		if other.key() == self {
			continue
		}
		who := "service " + other.Name
		if other.Tenant != tenant {
			who = "another tenant's service"
		}
		for _, r := range other.Spec.Roles {
			if published(r) {
				for _, ep := range r.Endpoints {
					used[ep.Port] = who
				}
			}
		}
	}
	return used
}

// assignPorts gives every published endpoint that asks for port 0 a port:
// the one it had in the service's previous model, or a free one of the
// tenant's ports (the cluster's tenant range when the operator assigned
// the tenant none). A tenant other than the default one may ask for a
// port by number only within its own ports, or keep the one it was given:
// public ports are the hoster's to hand out, not one tenant's to take
// before another.
func (c *Controller) assignPorts(t api.Tenant, spec *api.ServiceSpec, prev api.ServiceSpec) error {
	had := map[string]int{}
	for _, r := range prev.Roles {
		for _, ep := range r.Endpoints {
			had[r.Name+"/"+ep.Name] = ep.Port
		}
	}
	pool := t.Ports
	if pool.From == 0 {
		pool = c.cfg.TenantPorts
	}
	taken := c.publishedPorts(serviceKey(t.Name, spec.Name), t.Name)
	for p, what := range c.cfg.ReservedPorts {
		taken[p] = what
	}
	var others []api.PortRange // other tenants' ports: never picked for this one
	if c.cfg.Tenants != nil {
		for _, o := range c.cfg.Tenants.List() {
			if o.Name != t.Name && o.Ports.From != 0 {
				others = append(others, o.Ports)
			}
		}
	}
	for _, r := range spec.Roles {
		for _, ep := range r.Endpoints {
			if ep.Port != 0 {
				taken[ep.Port] = "this service"
			}
		}
	}
	var problems []string
	for i := range spec.Roles {
		r := &spec.Roles[i]
		if !published(*r) {
			continue
		}
		for j := range r.Endpoints {
			ep := &r.Endpoints[j]
			field := fmt.Sprintf("roles[%d].endpoints[%d].port", i, j)
			prevPort := had[r.Name+"/"+ep.Name]
			switch {
			case ep.Port == 0 && prevPort != 0:
				ep.Port = prevPort
			case ep.Port == 0:
				port, ok := freePort(pool, taken, others)
				if !ok {
					problems = append(problems, fmt.Sprintf("%s: no free port left in %s", field, pool))
					continue
				}
				ep.Port = port
				taken[port] = "this service"
			case t.Name != api.DefaultTenant && ep.Port != prevPort && !t.Ports.Contains(ep.Port):
				problems = append(problems, fmt.Sprintf("%s: tenant %s may publish only its own ports (%s); leave the port out (0) to have one picked", field, t.Name, t.Ports))
			}
		}
	}
	if len(problems) > 0 {
		return api.Errorf(api.CodeInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

func freePort(pool api.PortRange, taken map[int]string, others []api.PortRange) (int, bool) {
next:
	for p := pool.From; p <= pool.To; p++ {
		if _, used := taken[p]; used {
			continue
		}
		for _, o := range others {
			if o.Contains(p) {
				continue next
			}
		}
		return p, true
	}
	return 0, false
}

// migrateKeys moves what was stored before tenancy, keyed by name alone
// (services "name", instances "name/id", images "name"), to the default
// tenant's keys, in one batch. The records already name the default tenant.
func (c *Controller) migrateKeys(ctx context.Context) error {
	var ops []state.Op
	move := func(kind string, old bool, e state.Entry) {
		if old {
			ops = append(ops, del(kind, e.Key), state.Op{Kind: kind, Key: api.DefaultTenant + "/" + e.Key, Value: e.Value})
		}
	}
	for _, e := range c.store.List(state.KindServices, "") {
		move(state.KindServices, !strings.Contains(e.Key, "/"), e)
	}
	for _, e := range c.store.List(state.KindInstances, "") {
		move(state.KindInstances, strings.Count(e.Key, "/") == 1, e)
	}
	for _, e := range c.store.List(state.KindImages, "") {
		move(state.KindImages, !strings.Contains(e.Key, "/"), e)
	}
	if len(ops) == 0 {
		return nil
	}
	if err := c.apply(ctx, ops); err != nil {
		return fmt.Errorf("fabric: move objects under the default tenant: %w", err)
	}
	c.log.Info("moved objects stored before tenancy under the default tenant", "objects", len(ops)/2)
	return nil
}
