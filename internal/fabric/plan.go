package fabric

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Plan says what deploying spec in tenant would change, and changes
// nothing: which roles' templates change and which fields, the instance
// counts, the live instances the rolling upgrade would replace (by update
// domain) and those that would stop. It makes Deploy's checks (stage), so
// it refuses what Deploy refuses, with the same errors.
func (c *Controller) Plan(ctx context.Context, tenant string, spec api.ServiceSpec) (api.Plan, error) {
	c.fetchMissingPackages(ctx, spec) // as Deploy does: weft deploy plans first
	st, err := c.stage(tenant, spec)
	if err != nil {
		return api.Plan{}, err
	}
	old, spec := st.rec.Spec, st.spec
	p := api.Plan{Service: spec.Name, Create: !st.exists, Version: st.rec.Version, NewVersion: st.rec.Version,
		Domains: occupiedDomains(spec)}
	switch {
	case !st.exists:
		p.NewVersion = 1
	case modelChanged(old, spec):
		p.NewVersion++
	}
	if st.exists && old.UpgradeDomains != spec.UpgradeDomains {
		p.Changes = diffJSON("upgradeDomains", old.UpgradeDomains, spec.UpgradeDomains)
	}
	var insts []instanceRecord
	if st.exists {
		insts = list[instanceRecord](c.store, state.KindInstances, st.rec.key()+"/")
		slices.SortFunc(insts, func(a, b instanceRecord) int { return compareInstances(&a, &b) })
	}
	for _, role := range spec.Roles {
		rp := api.RolePlan{Name: role.Name, Action: api.PlanCreate, To: role.Instances}
		if i := roleIndex(old, role.Name); i >= 0 {
			prev := old.Roles[i]
			rp.From = prev.Instances
			rp.Changes = diffRoles(prev, role)
			if len(rp.Changes) == 0 {
				// Changed in place: an update that replaces nothing.
				rp.Changes = extensionChanges(prev, role)
			}
			switch {
			case len(rp.Changes) > 0:
				rp.Action = api.PlanUpdate
			case rp.From != rp.To:
				rp.Action = api.PlanScale
			default:
				rp.Action = api.PlanNone
			}
		}
		// As the reconciler will see them: a slot beyond the new count
		// stops; a live one running another template is replaced in its
		// update domain's turn (also when an earlier upgrade is still
		// under way).
		hash := templateHash(role)
		byDomain := map[int][]string{}
		for _, in := range insts {
			switch {
			case in.Role != role.Name || !in.live():
			case in.Slot >= role.Instances:
				rp.Stops = append(rp.Stops, in.ID)
			case in.Template != hash:
				byDomain[in.UpdateDomain] = append(byDomain[in.UpdateDomain], in.ID)
			}
		}
		for _, d := range slices.Sorted(maps.Keys(byDomain)) {
			rp.Restarts = append(rp.Restarts, api.DomainRestarts{Domain: d, Instances: byDomain[d]})
		}
		rp.MakesDrives, rp.KeepsDrives = c.planDrives(tenant, spec.Name, role)
		p.Roles = append(p.Roles, rp)
	}
	for _, prev := range old.Roles {
		if roleIndex(spec, prev.Name) >= 0 {
			continue
		}
		rp := api.RolePlan{Name: prev.Name, Action: api.PlanDestroy, From: prev.Instances}
		for _, in := range insts {
			if in.Role == prev.Name && in.live() {
				rp.Stops = append(rp.Stops, in.ID)
			}
		}
		p.Roles = append(p.Roles, rp)
	}
	return p, nil
}

// occupiedDomains is how many update domains hold a slot of spec: slots
// go to domains in turn (slot % domains), so a service whose largest role
// has 3 instances uses 3 domains, however many it may have.
func occupiedDomains(spec api.ServiceSpec) int {
	most := 0
	for _, r := range spec.Roles {
		most = max(most, r.Instances)
	}
	return min(most, upgradeDomains(spec))
}

// diffRoles lists the fields in which two roles' templates differ (the
// instance count is not part of a template).
func diffRoles(old, new api.RoleSpec) []api.FieldChange {
	if templateHash(old) == templateHash(new) {
		return nil
	}
	old.Instances, new.Instances = 0, 0
	return diffJSON("", old, new)
}

// diffJSON compares two values as their JSON, field by field below path:
// objects by key and arrays by index, so a changed setting is named
// "settings.VERSION" and not "settings".
func diffJSON(path string, old, new any) []api.FieldChange {
	var a, b any
	for _, v := range []struct {
		in  any
		out *any
	}{{old, &a}, {new, &b}} {
		data, err := json.Marshal(v.in)
		if err != nil {
			// Only model types come here; they always marshal.
			panic(fmt.Sprintf("fabric: marshal %T: %v", v.in, err))
		}
		json.Unmarshal(data, v.out)
	}
	var out []api.FieldChange
	diffValues(path, a, b, &out)
	return out
}

func diffValues(path string, a, b any, out *[]api.FieldChange) {
	am, aObj := a.(map[string]any)
	bm, bObj := b.(map[string]any)
	if aObj && bObj {
		keys := slices.AppendSeq(slices.Collect(maps.Keys(am)), maps.Keys(bm))
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			diffValues(p, am[k], bm[k], out)
		}
		return
	}
	as, aArr := a.([]any)
	bs, bArr := b.([]any)
	if aArr && bArr {
		for i := range max(len(as), len(bs)) {
			var x, y any
			if i < len(as) {
				x = as[i]
			}
			if i < len(bs) {
				y = bs[i]
			}
			diffValues(fmt.Sprintf("%s[%d]", path, i), x, y, out)
		}
		return
	}
	ja, jb := jsonText(a), jsonText(b)
	if ja != jb {
		*out = append(*out, api.FieldChange{Field: path, Old: ja, New: jb})
	}
}

// jsonText is v as compact JSON, "" for an absent value.
func jsonText(v any) string {
	if v == nil {
		return ""
	}
	data, _ := json.Marshal(v)
	return string(data)
}
