package fabric

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/state"
)

// Deploy creates a tenant's service or, when its model changed, upgrades
// it: the reconciler then rolls the changed roles one update domain at a
// time. A change of instance counts alone is a scale: it keeps the
// version and the other instances. A refused model (invalid, over the
// tenant's quota, a port the tenant may not publish) changes nothing.
func (c *Controller) Deploy(ctx context.Context, tenant string, spec api.ServiceSpec) (api.Service, error) {
	c.fetchMissingPackages(ctx, spec)
	// Each try stages a copy of its own: stage completes the model in
	// place (defaults, images, ports), and the caller's slices with it.
	model, err := json.Marshal(spec)
	if err != nil {
		return api.Service{}, fmt.Errorf("fabric: deploy %s: %w", spec.Name, err)
	}
	return c.changeService(ctx, writeConflict(tenant, spec.Name), func() (serviceChange, error) {
		var spec api.ServiceSpec
		if err := json.Unmarshal(model, &spec); err != nil {
			return serviceChange{}, fmt.Errorf("fabric: deploy: %w", err)
		}
		st, err := c.stage(tenant, spec)
		if err != nil {
			return serviceChange{}, err
		}
		rec, spec := st.rec, st.spec
		now := c.now()
		var events []api.Event
		switch {
		case st.exists && reflect.DeepEqual(rec.Spec, spec):
			return serviceChange{rec: rec}, nil // nothing changed: deploying twice is a no-op
		case st.exists && !modelChanged(rec.Spec, spec):
			for _, r := range spec.Roles {
				if old := rec.Spec.Roles[roleIndex(rec.Spec, r.Name)].Instances; old != r.Instances {
					events = append(events, scaledEvent(tenant, spec.Name, r.Name, old, r.Instances))
				}
			}
			rec.Spec = spec
			rec.UpdatedAt = now
		case st.exists:
			rec.Revisions = appendRevision(rec.Revisions, revision{Version: rec.Version, Spec: rec.Spec})
			rec.Version++
			rec.Spec = spec
			rec.Status, rec.Message = api.ServiceStable, ""
			rec.UpdatedAt = now
		default:
			rec = serviceRecord{Service: api.Service{
				Name: spec.Name, Tenant: tenant, Version: 1, Spec: spec,
				Status: api.ServiceStable, CreatedAt: now, UpdatedAt: now,
			}}
		}
		// Drives are made before the write that needs them, on every try:
		// EnsureSlot makes only those missing.
		if err := c.ensureDrives(ctx, tenant, spec); err != nil {
			return serviceChange{}, err
		}
		if events == nil {
			verb := "deployed"
			if rec.Version > 1 {
				verb = "updated"
			}
			events = append(events, api.Event{Type: "service." + verb, Tenant: tenant, Service: spec.Name,
				Message: fmt.Sprintf("service %s %s (version %d)", spec.Name, verb, rec.Version)})
		}
		ops := append(st.checks, st.netOps...)
		return serviceChange{ops: append(ops, put(state.KindServices, rec.key(), rec)), rec: rec, events: events}, nil
	})
}

// staged is a model checked and completed as Deploy would store it (its
// images pinned, its ports picked), with the stored service it replaces.
type staged struct {
	spec   api.ServiceSpec
	rec    serviceRecord
	exists bool
	netOps []state.Op // the slots' addresses (networkOps)
	// checks are the checks of what the decision read (the tenant, the
	// service, the markers it depends on: optimistic.go).
	checks []state.Op
}

// stage makes every check of a deploy and writes nothing, so that Deploy
// and Plan refuse the same models with the same errors. It takes no lock:
// a deploy writes with staged.checks.
func (c *Controller) stage(tenant string, spec api.ServiceSpec) (staged, error) {
	spec.SetDefaults()
	if err := spec.Validate(); err != nil {
		return staged{}, err
	}
	mk := c.readMarkers(tenant)
	t, checks, err := c.tenantToWrite(tenant)
	if err != nil {
		return staged{}, err
	}
	if err := c.resolveImages(tenant, &spec); err != nil {
		return staged{}, err
	}
	if err := c.resolveExtensions(tenant, &spec); err != nil {
		return staged{}, err
	}
	rec, svcCheck, exists := c.lookupService(tenant, spec.Name)
	keepUpgradedImages(&spec, rec.Spec)
	if err := c.assignPorts(t, &spec, rec.Spec); err != nil {
		return staged{}, err
	}
	if err := c.checkFeasible(tenant, spec); err != nil {
		return staged{}, err
	}
	if !exists || !reflect.DeepEqual(rec.Spec, spec) {
		if err := c.checkQuota(t, rec.Spec, spec); err != nil {
			return staged{}, err
		}
	}
	if exists && rec.Status == api.ServiceDeleting {
		return staged{}, api.Errorf(api.CodeConflict, "service %s is being deleted", spec.Name)
	}
	netOps, err := c.networkOps(tenant, spec)
	if err != nil {
		return staged{}, err
	}
	checks = append(append(checks, svcCheck), mk.guards(t, rec.Spec, spec)...)
	return staged{spec: spec, rec: rec, exists: exists, netOps: netOps, checks: checks}, nil
}

// modelChanged reports whether two models differ in more than their
// instance counts: only such a change makes a new version.
func modelChanged(old, new api.ServiceSpec) bool {
	return !reflect.DeepEqual(withoutCounts(old), withoutCounts(new))
}

func withoutCounts(s api.ServiceSpec) api.ServiceSpec {
	s = cloneSpec(s)
	for i := range s.Roles {
		s.Roles[i].Instances = 0
	}
	return s
}

func scaledEvent(tenant, service, role string, from, to int) api.Event {
	return api.Event{Type: "service.scaled", Tenant: tenant, Service: service, Role: role,
		Message: fmt.Sprintf("%s/%s scaled from %d to %d instances", service, role, from, to)}
}

// resolveImages pins each container or vm role to the digest of the image
// it names (the tenant's own, else the default tenant's), refusing images
// that do not exist or serve another runtime.
func (c *Controller) resolveImages(tenant string, spec *api.ServiceSpec) error {
	var problems []string
	for i := range spec.Roles {
		role := &spec.Roles[i]
		role.ImageDigest = ""
		if role.Runtime != api.RuntimeContainer && role.Runtime != api.RuntimeVM {
			continue
		}
		img, ok := images.Lookup(c.store, tenant, role.Image)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("roles[%d].image: no image named %s (weft image import or weft image build makes one)", i, role.Image))
		case img.Type != role.Runtime:
			problems = append(problems, fmt.Sprintf("roles[%d].image: %s is a %s image, and the role's runtime is %s", i, role.Image, img.Type, role.Runtime))
		default:
			role.ImageDigest = img.Digest
		}
	}
	if len(problems) > 0 {
		return api.Errorf(api.CodeInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// ImageUsers names the services (as service/role) whose current or
// previous versions run tenant's image, which must then not be deleted.
// The default tenant's images serve every tenant that has none of the
// same name.
func (c *Controller) ImageUsers(tenant, image string) []string {
	var users []string
	for _, svc := range list[serviceRecord](c.store, state.KindServices, "") {
		if img, ok := images.Lookup(c.store, svc.Tenant, image); !ok || img.Tenant != tenant {
			continue
		}
		specs := []api.ServiceSpec{svc.Spec}
		for _, rev := range svc.Revisions {
			specs = append(specs, rev.Spec)
		}
		seen := map[string]bool{}
		for _, spec := range specs {
			for _, r := range spec.Roles {
				if u := svc.Name + "/" + r.Name; r.Image == image && !seen[u] {
					if svc.Tenant != tenant {
						u = "a service of another tenant"
					}
					seen[u] = true
					users = append(users, u)
				}
			}
		}
	}
	return users
}

func appendRevision(revs []revision, r revision) []revision {
	revs = append(revs, r)
	if len(revs) > maxRevisions {
		revs = revs[len(revs)-maxRevisions:]
	}
	return revs
}

// checkFeasible refuses what no node could ever run, and public ports that
// another service already publishes.
func (c *Controller) checkFeasible(tenant string, spec api.ServiceSpec) error {
	nodes, _ := c.nodeCache.list(c.store, state.KindNodes)
	var problems []string
	conflict := false // a port taken by another service: 409, not 400
	for i, role := range spec.Roles {
		if role.Runtime == api.RuntimeProcess && !c.packages.Has(role.Package) {
			problems = append(problems, fmt.Sprintf("roles[%d].package: %s was not uploaded (weft deploy uploads package folders)", i, role.Package))
		}
	}
	if len(nodes) > 0 {
		for i, role := range spec.Roles {
			var offered, fits bool // by a node that exists, even if down: capacity may come back
			var largest api.Resources
			for _, n := range nodes {
				if !slices.Contains(n.Runtimes, role.Runtime) {
					continue
				}
				offered = true
				if n.Capacity.CPU >= role.Size.CPU && n.Capacity.Memory >= role.Size.Memory {
					fits = true
				}
				if n.Capacity.CPU > largest.CPU {
					largest.CPU = n.Capacity.CPU
				}
				if n.Capacity.Memory > largest.Memory {
					largest.Memory = n.Capacity.Memory
				}
			}
			switch {
			case !offered:
				problems = append(problems, fmt.Sprintf("roles[%d].runtime: no node offers the %s runtime", i, role.Runtime))
			case !fits:
				problems = append(problems, fmt.Sprintf("roles[%d].size: %g CPU and %s is more than any node has (largest: %g CPU, %s)",
					i, role.Size.CPU, role.Size.Memory, largest.CPU, largest.Memory))
			}
		}
	}
	used := c.publishedPorts(serviceKey(tenant, spec.Name), tenant)
	for i, r := range spec.Roles {
		if !published(r) {
			continue
		}
		for j, ep := range r.Endpoints {
			field := fmt.Sprintf("roles[%d].endpoints[%d].port", i, j)
			if what, ok := c.cfg.ReservedPorts[ep.Port]; ok {
				conflict = conflict || len(problems) == 0
				problems = append(problems, fmt.Sprintf("%s: %d is the controller's %s port", field, ep.Port, what))
				continue
			}
			if ep.Port < privilegedPorts && !c.cfg.AllowPrivilegedPorts {
				problems = append(problems, fmt.Sprintf("%s: %d is a privileged port; the operator allows them with weft server --allow-privileged-ports", field, ep.Port))
				continue
			}
			if owner, ok := used[ep.Port]; ok {
				conflict = conflict || len(problems) == 0
				problems = append(problems, fmt.Sprintf("%s: %d is already published by %s", field, ep.Port, owner))
			}
		}
	}
	if len(problems) > 0 {
		code := api.CodeInvalid
		if conflict {
			code = api.CodeConflict
		}
		return api.Errorf(code, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// privilegedPorts: ports below it are the system's (root binds them on
// most hosts); publishing one needs Config.AllowPrivilegedPorts.
const privilegedPorts = 1024

// published reports whether a role's endpoints are on the load balancer.
func published(r api.RoleSpec) bool { return r.Kind == api.KindWeb || r.Kind == api.KindVM }

// Scale sets a role's instance count without touching its other
// instances. The service keeps its version.
func (c *Controller) Scale(ctx context.Context, tenant, name, role string, n int) (api.Service, error) {
	return c.changeService(ctx, writeConflict(tenant, name), func() (serviceChange, error) {
		mk := c.readMarkers(tenant)
		rec, check, err := c.liveService(tenant, name)
		if err != nil {
			return serviceChange{}, err
		}
		idx := roleIndex(rec.Spec, role)
		if idx < 0 {
			return serviceChange{}, api.Errorf(api.CodeNotFound, "service %s has no role %q", name, role)
		}
		spec := cloneSpec(rec.Spec)
		spec.Roles[idx].Instances = n
		if err := spec.Validate(); err != nil {
			return serviceChange{}, err
		}
		if spec.Roles[idx].Instances == rec.Spec.Roles[idx].Instances {
			return serviceChange{rec: rec}, nil
		}
		ops, err := c.replaceModel(ctx, tenant, mk, rec.Spec, spec)
		if err != nil {
			return serviceChange{}, err
		}
		old := rec.Spec.Roles[idx].Instances
		rec.Spec = spec // the version stays: only a change of the model makes one
		rec.UpdatedAt = c.now()
		return serviceChange{ops: append(append([]state.Op{check}, ops...), put(state.KindServices, rec.key(), rec)), rec: rec,
			events: []api.Event{scaledEvent(tenant, name, role, old, n)}}, nil
	})
}

// replaceModel makes the checks of replacing a service's model old by
// new that Scale and Rollback share (the tenant's quota, the networks,
// the drives) and returns the checks and the writes (networkOps) of the
// batch, the service's own put aside.
func (c *Controller) replaceModel(ctx context.Context, tenant string, mk markers, old, new api.ServiceSpec) ([]state.Op, error) {
	t, ops, err := c.tenantToWrite(tenant)
	if err != nil {
		return nil, err
	}
	if err := c.checkQuota(t, old, new); err != nil {
		return nil, err
	}
	netOps, err := c.networkOps(tenant, new)
	if err != nil {
		return nil, err
	}
	if err := c.ensureDrives(ctx, tenant, new); err != nil {
		return nil, err
	}
	ops = append(ops, mk.guards(t, old, new)...)
	return append(ops, netOps...), nil
}

// Rollback returns a service to the model it ran before its last deploy,
// keeping the current instance counts, by the same rolling upgrade.
func (c *Controller) Rollback(ctx context.Context, tenant, name string) (api.Service, error) {
	return c.changeService(ctx, writeConflict(tenant, name), func() (serviceChange, error) {
		mk := c.readMarkers(tenant)
		rec, check, err := c.liveService(tenant, name)
		if err != nil {
			return serviceChange{}, err
		}
		if len(rec.Revisions) == 0 {
			return serviceChange{}, api.Errorf(api.CodeConflict, "service %s has no earlier version to roll back to", name)
		}
		prev := rec.Revisions[len(rec.Revisions)-1]
		spec := cloneSpec(prev.Spec)
		for i := range spec.Roles {
			if j := roleIndex(rec.Spec, spec.Roles[i].Name); j >= 0 {
				spec.Roles[i].Instances = rec.Spec.Roles[j].Instances
			}
		}
		ops, err := c.replaceModel(ctx, tenant, mk, rec.Spec, spec)
		if err != nil {
			return serviceChange{}, err
		}
		rec.DeclinedImages = declinedImages(rec.DeclinedImages, rec.Spec, spec)
		rec.Revisions = append(rec.Revisions[:len(rec.Revisions)-1], revision{Version: rec.Version, Spec: rec.Spec})
		rec.Version++
		rec.Spec = spec
		rec.Status, rec.Message = api.ServiceStable, ""
		rec.UpdatedAt = c.now()
		return serviceChange{ops: append(append([]state.Op{check}, ops...), put(state.KindServices, rec.key(), rec)), rec: rec,
			events: []api.Event{{Type: "service.rollback", Tenant: tenant, Service: name,
				Message: fmt.Sprintf("service %s rolling back to the model of version %d (now version %d)", name, prev.Version, rec.Version)}}}, nil
	})
}

// DeleteService stops every instance of a service, then forgets it and
// deletes the drives of its slots, or with keepDrives leaves them to the
// tenant (a service deployed again under the name finds them).
func (c *Controller) DeleteService(ctx context.Context, tenant, name string, keepDrives bool) (api.Service, error) {
	return c.changeService(ctx, writeConflict(tenant, name), func() (serviceChange, error) {
		rec, check, ok := c.lookupService(tenant, name)
		if !ok {
			return serviceChange{}, api.Errorf(api.CodeNotFound, "no service named %s", name)
		}
		if rec.Status == api.ServiceDeleting && rec.KeepDrives == keepDrives {
			return serviceChange{rec: rec}, nil
		}
		rec.Status, rec.Upgrade, rec.UpdatedAt = api.ServiceDeleting, nil, c.now()
		rec.KeepDrives = keepDrives
		return serviceChange{ops: []state.Op{check, put(state.KindServices, rec.key(), rec)}, rec: rec,
			events: []api.Event{{Type: "service.deleting", Tenant: tenant, Service: name, Message: "service " + name + " is being deleted"}}}, nil
	})
}

// writeConflict is the error of a write of a service that kept
// conflicting (changeService): what it read kept changing under it.
func writeConflict(tenant, service string) error {
	return api.Errorf(api.CodeConflict, "service %s, tenant %s or a network of the service was changed or deleted meanwhile, at every try; try again", service, tenant)
}

// liveService is the tenant's service of that name, not being deleted,
// with the check that it is still so (lookupService).
func (c *Controller) liveService(tenant, name string) (serviceRecord, state.Op, error) {
	rec, check, ok := c.lookupService(tenant, name)
	if !ok {
		return rec, check, api.Errorf(api.CodeNotFound, "no service named %s", name)
	}
	if rec.Status == api.ServiceDeleting {
		return rec, check, api.Errorf(api.CodeConflict, "service %s is being deleted", name)
	}
	return rec, check, nil
}

// Services lists a tenant's services (every tenant's with
// api.AllTenants) with their role counts.
func (c *Controller) Services(ctx context.Context, tenant string) []api.Service {
	return c.servicesView(c.svcCache.of(c.store.List(state.KindServices, tenantPrefix(tenant))))
}

// ServicesPage is a page of Services: at most limit services whose keys
// (tenant/name) come after after, read from the state a page at a time
// with only their own instances, so that its cost is the page's, not the
// whole list's. more reports whether services follow the page.
func (c *Controller) ServicesPage(ctx context.Context, tenant, after string, limit int) (page []api.Service, more bool) {
	recs := c.svcCache.of(c.store.ListAfter(state.KindServices, tenantPrefix(tenant), after, limit+1))
	if len(recs) > limit {
		recs, more = recs[:limit], true
	}
	return c.servicesView(recs), more
}

// servicesView adds the role counts to services, each from its own
// instances (one prefix of the store each): not from every instance of
// the cluster, which a list of a few services walked, keying each.
func (c *Controller) servicesView(recs []*serviceRecord) []api.Service {
	out := make([]api.Service, 0, len(recs))
	for _, r := range recs {
		out = append(out, c.serviceViewOf(*r, c.instancesOf(r)))
	}
	return out
}

// instancesOf returns a service's instances as last decoded (shared:
// read only).
func (c *Controller) instancesOf(rec *serviceRecord) []*instanceRecord {
	return c.instCache.listPrefix(c.store, state.KindInstances, rec.key()+"/")
}

// Service returns one of a tenant's services.
func (c *Controller) Service(ctx context.Context, tenant, name string) (api.Service, error) {
	rec, ok := get[serviceRecord](c.store, state.KindServices, serviceKey(tenant, name))
	if !ok {
		return api.Service{}, api.Errorf(api.CodeNotFound, "no service named %s", name)
	}
	return c.serviceView(rec), nil
}

// serviceView adds the role counts to the stored service.
func (c *Controller) serviceView(rec serviceRecord) api.Service {
	return c.serviceViewOf(rec, c.instancesOf(&rec))
}

// serviceViewOf adds the role counts of insts, the service's instances
// (shared: read only), to the stored service.
func (c *Controller) serviceViewOf(rec serviceRecord, insts []*instanceRecord) api.Service {
	s := rec.Service
	s.Roles = nil
	for _, role := range rec.Spec.Roles {
		rs := api.RoleStatus{Name: role.Name, Desired: role.Instances}
		hash := templateHash(role)
		var current []*instanceRecord
		outdated := false
		for _, in := range insts {
			if in.Role != role.Name || !in.live() {
				continue
			}
			// Counted only when it runs the current template, so that
			// "3/3 healthy" during an upgrade means the new version.
			if in.Template != hash {
				outdated = true
				continue
			}
			current = append(current, in) // shared, read only: copying the records was most of a service list
			switch {
			case in.healthy():
				rs.Healthy++
				rs.Running++
			case in.State == api.StateRunning:
				rs.Running++
			case in.State == api.StatePending:
				rs.Pending++
			}
		}
		rs.Status = roleStatus(rs, current, outdated || rec.Status == api.ServiceUpgrading)
		s.Roles = append(s.Roles, rs)
	}
	return s
}

// roleStatus says how a role fares (see api.RoleStable and the others),
// from its counts and its live instances of the current template;
// updating is whether an upgrade of the role is under way.
func roleStatus(rs api.RoleStatus, current []*instanceRecord, updating bool) string {
	if rs.Healthy >= rs.Desired && !updating {
		return api.RoleStable
	}
	placed, failed := 0, 0
	firstStart := len(current) < rs.Desired // slots the reconciler has yet to fill
	for _, in := range current {
		if in.Node != "" {
			placed++
			if in.FailedStarts >= api.FailingAfter {
				failed++
			}
		}
		unplaceable := in.Node == "" && in.Message != ""
		if !in.healthy() && !in.WasHealthy && in.FailedStarts < api.FailingAfter && !unplaceable {
			firstStart = true
		}
	}
	switch {
	case rs.Healthy == 0 && placed > 0 && failed == placed:
		return api.RoleFailing
	case updating || firstStart:
		return api.RoleUpdating
	}
	return api.RoleDegraded
}

// Instances lists a tenant's instances (every tenant's with
// api.AllTenants), of one service or of all, ordered by tenant, service,
// role and slot.
func (c *Controller) Instances(ctx context.Context, tenant, service string) []api.Instance {
	prefix := tenantPrefix(tenant)
	if service != "" && tenant != api.AllTenants {
		prefix = serviceKey(tenant, service) + "/"
	}
	var all []*instanceRecord // shared: read only
	if prefix == "" {
		all, _ = c.instCache.list(c.store, state.KindInstances)
	} else { // a tenant's or a service's: that prefix of the store only
		all = c.instCache.listPrefix(c.store, state.KindInstances, prefix)
	}
	var recs []*instanceRecord
	for _, r := range all {
		if service == "" || r.Service == service {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, compareInstances)
	out := make([]api.Instance, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Instance)
	}
	return out
}

// Reimage starts an instance again from its package or image on the same
// node: what it wrote is thrown away (a VM's overlay, a container's
// writable layer), except on its drives, which stay. VMs on disks of
// their own (weft vm create) keep them and cannot be reimaged.
func (c *Controller) Reimage(ctx context.Context, tenant, id string) (api.Instance, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.findInstance(tenant, id)
	if !ok {
		return api.Instance{}, api.Errorf(api.CodeNotFound, "no instance %s", id)
	}
	if len(rec.Spec.Disks) > 0 {
		return api.Instance{}, api.Errorf(api.CodeConflict, "instance %s is a persistent VM: its disks are kept, so it cannot be reimaged", id)
	}
	if rec.Node == "" || !rec.live() {
		return api.Instance{}, api.Errorf(api.CodeConflict, "instance %s is not running on a node (%s)", id, rec.State)
	}
	rec.Incarnation++
	rec.UpdatedAt = c.now()
	if err := c.apply(ctx, []state.Op{put(state.KindInstances, rec.key(), rec)}); err != nil {
		return api.Instance{}, err
	}
	c.events.Add(api.Event{Type: "instance.reimaged", Tenant: rec.Tenant, Service: rec.Service, Role: rec.Role, Instance: id, Node: rec.Node,
		Message: fmt.Sprintf("instance %s reimaged on %s", id, rec.Node)})
	c.poke()
	return rec.Instance, nil
}

// Instance returns one of a tenant's instances (any tenant's with
// api.AllTenants) by ID.
func (c *Controller) Instance(ctx context.Context, tenant, id string) (api.Instance, error) {
	rec, ok := c.findInstance(tenant, id)
	if !ok {
		return api.Instance{}, api.Errorf(api.CodeNotFound, "no instance %s", id)
	}
	return rec.Instance, nil
}

// findInstance looks one of a tenant's instances up by ID (any tenant's
// with api.AllTenants).
func (c *Controller) findInstance(tenant, id string) (instanceRecord, bool) {
	return c.findInstanceIn(nameServices(c.store.List(state.KindServices, tenantPrefix(tenant))), id)
}

// serviceNames maps each service's name to the tenants that have a service
// of that name, for looking instances up by ID (findInstanceIn).
type serviceNames map[string][]string

// nameServices indexes services (entries of state.KindServices) by name.
func nameServices(services []state.Entry) serviceNames {
	out := make(serviceNames, len(services))
	for _, s := range services {
		t, name, _ := strings.Cut(s.Key, "/")
		out[name] = append(out[name], t)
	}
	return out
}

// findInstanceIn looks an instance up by ID among the instances of the
// services named, for a caller that looks up many (a batch of heartbeats
// names the services once). An instance's ID begins with its service's
// name and a dash (names may contain dashes: each dash of the ID ends a
// name to try), so only the names the ID begins with are tried: walking
// every service for each status reported was half of what a heartbeat
// cost the controller at 200 services.
func (c *Controller) findInstanceIn(services serviceNames, id string) (instanceRecord, bool) {
	for i := range len(id) {
		if id[i] != '-' {
			continue
		}
		name := id[:i]
		for _, t := range services[name] {
			if rec, ok := c.instCache.get(c.store, state.KindInstances, instanceKey(t, name, id)); ok {
				return *rec.clone(), true
			}
		}
	}
	return instanceRecord{}, false
}

// tenantPrefix is the key prefix of a tenant's services and instances.
func tenantPrefix(tenant string) string {
	if tenant == api.AllTenants {
		return ""
	}
	return tenant + "/"
}

func roleIndex(spec api.ServiceSpec, role string) int {
	for i, r := range spec.Roles {
		if r.Name == role {
			return i
		}
	}
	return -1
}

func cloneSpec(s api.ServiceSpec) api.ServiceSpec {
	s.Roles = append([]api.RoleSpec(nil), s.Roles...)
	return s
}
