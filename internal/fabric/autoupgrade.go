package fabric

import (
	"context"
	"fmt"
	"slices"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/state"
)

// Managed OS updates: a vm role with autoUpgrade names an image
// NAME:VERSION; when an image of the same NAME with a newer VERSION is
// published (weft image import or build), autoUpgrade gives the service a
// new version with the role on that image, which the reconciler rolls out
// by update domain exactly as it rolls out a deploy (drain, stop, start,
// wait healthy, next domain; a failed one halts). The service's history
// keeps the version before it, so weft rollback goes back, and the image
// a rollback leaves is never chosen again for the service, so the
// rollback sticks until a newer image comes. A deploy naming an older
// version of the family than the role runs keeps the newer one: the
// model's version is where the role starts, not a pin.

// autoUpgrade starts the upgrades there is a newer image for, each in a
// stable service (not while a deploy, upgrade or delete is under way).
// It runs on the leader after each reconcile pass.
func (c *Controller) autoUpgrade(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.store.List(state.KindServices, "") {
		var rec serviceRecord
		if unmarshal(e.Value, &rec) != nil {
			continue
		}
		if rec.Status != api.ServiceStable || !slices.ContainsFunc(rec.Spec.Roles, func(r api.RoleSpec) bool { return r.AutoUpgrade }) {
			continue // most services: nothing to copy or look up
		}
		spec := cloneSpec(rec.Spec)
		var moved []string
		for i := range spec.Roles {
			role := &spec.Roles[i]
			if !role.AutoUpgrade || role.Runtime != api.RuntimeVM {
				continue
			}
			img, ok := c.newestImage(rec, *role)
			if !ok {
				continue
			}
			moved = append(moved, fmt.Sprintf("role %s from image %s to %s", role.Name, role.Image, img.Name))
			role.Image, role.ImageDigest = img.Name, img.Digest
		}
		if len(moved) == 0 {
			continue
		}
		rec.Revisions = appendRevision(rec.Revisions, revision{Version: rec.Version, Spec: rec.Spec})
		rec.Version++
		rec.Spec = spec
		rec.Status, rec.Message = api.ServiceStable, ""
		rec.UpdatedAt = c.now()
		// Checked: a deploy takes no lock (optimistic.go). The next pass
		// tries again.
		check := state.Op{Kind: state.KindServices, Key: e.Key, Check: true, Rev: e.Rev}
		if err := c.apply(ctx, []state.Op{check, put(state.KindServices, rec.key(), rec)}); err != nil {
			return fmt.Errorf("fabric: auto-upgrade %s: %w", rec.Name, err)
		}
		for _, m := range moved {
			c.figures.autoUps.Inc()
			c.events.Add(api.Event{Type: "service.autoupgrade", Tenant: rec.Tenant, Service: rec.Name,
				Message: fmt.Sprintf("service %s upgrading %s (now version %d)", rec.Name, m, rec.Version)})
		}
	}
	return nil
}

// newestImage is the image of role's family, newer than the one it runs,
// that no rollback of the service declined: the newest such of the
// service's tenant's images and the default tenant's (the tenant's own
// under a name both have, as a deploy resolves it), of the role's image
// type.
func (c *Controller) newestImage(rec serviceRecord, role api.RoleSpec) (api.Image, bool) {
	family, current, ok := api.ImageVersion(role.Image)
	if !ok {
		return api.Image{}, false
	}
	ran := map[string]bool{role.ImageDigest: true}
	for _, d := range rec.DeclinedImages {
		ran[d] = true
	}
	var best api.Image
	bestVersion := current
	for _, tenant := range []string{rec.Tenant, api.DefaultTenant} {
		for _, img := range list[api.Image](c.store, state.KindImages, images.Key(tenant, "")) {
			f, v, ok := api.ImageVersion(img.Name)
			if !ok || f != family || img.Type != api.ImageVM || api.CompareExtensionVersions(v, bestVersion) <= 0 {
				continue
			}
			// The name as a deploy would resolve it (the tenant's own first).
			if resolved, ok := images.Lookup(c.store, rec.Tenant, img.Name); !ok || ran[resolved.Digest] {
				continue
			} else {
				best, bestVersion = resolved, v
			}
		}
	}
	return best, best.Name != ""
}

// keepUpgradedImages keeps, in a deploy's spec, the image each
// autoUpgrade role was upgraded to when the spec names an older version
// of the same family.
func keepUpgradedImages(spec *api.ServiceSpec, stored api.ServiceSpec) {
	for i := range spec.Roles {
		r := &spec.Roles[i]
		j := roleIndex(stored, r.Name)
		if !r.AutoUpgrade || j < 0 || !stored.Roles[j].AutoUpgrade {
			continue
		}
		family, v, ok := api.ImageVersion(r.Image)
		sf, sv, sok := api.ImageVersion(stored.Roles[j].Image)
		if ok && sok && family == sf && api.CompareExtensionVersions(sv, v) > 0 {
			r.Image, r.ImageDigest = stored.Roles[j].Image, stored.Roles[j].ImageDigest
		}
	}
}

// declinedImages adds to declined the images of autoUpgrade roles that a
// rollback from spec from to spec to leaves.
func declinedImages(declined []string, from, to api.ServiceSpec) []string {
	for _, r := range from.Roles {
		j := roleIndex(to, r.Name)
		if r.AutoUpgrade && r.ImageDigest != "" && (j < 0 || to.Roles[j].ImageDigest != r.ImageDigest) && !slices.Contains(declined, r.ImageDigest) {
			declined = append(declined, r.ImageDigest)
		}
	}
	return declined
}
