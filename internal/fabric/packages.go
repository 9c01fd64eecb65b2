package fabric

import (
	"context"
	"fmt"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/peercopy"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
)

// Packages are stored by each controller server in its own folder, not in
// the replicated state (they are megabytes). In a cluster every server
// pulls the packages the services use from the others (RunPackages, with
// peercopy), and one asked for a package it lacks fetches it first, so
// packages outlive the server they were uploaded to.

// fetchPackage gets a package this server lacks from another server and
// stores it, checking its digest.
func (c *Controller) fetchPackage(ctx context.Context, digest string) error {
	if c.cfg.FetchPackage == nil || peercopy.IsLocalOnly(ctx) {
		return pkgstore.ErrNotFound
	}
	rc, err := c.cfg.FetchPackage(ctx, digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, _, err := c.packages.Put(rc, checkPackage)
	if err != nil {
		return err
	}
	if got != digest {
		return fmt.Errorf("a server sent %s for package %s", got, digest)
	}
	return nil
}

// fetchMissingPackages fetches from the other servers the packages of spec
// this server lacks: one uploaded to the leader just before it lost the
// leadership to this server. What cannot be fetched, the deploy refuses.
func (c *Controller) fetchMissingPackages(ctx context.Context, spec api.ServiceSpec) {
	for _, r := range spec.Roles {
		if r.Package == "" || c.packages.Has(r.Package) || !pkgstore.ValidDigest(r.Package) {
			continue
		}
		if err := c.fetchPackage(ctx, r.Package); err != nil && err != pkgstore.ErrNotFound {
			// Warn: the deploy is refused as "not uploaded", and the
			// upload may have gone to a server that then lost the lead.
			c.log.Warn("a deployed package is not here and the other servers did not send it", "package", r.Package, "err", err)
		}
	}
}

// usedPackages lists the packages services and instances refer to.
func (c *Controller) usedPackages() map[string]bool {
	used := map[string]bool{}
	add := func(roles []api.RoleSpec) {
		for _, r := range roles {
			if r.Package != "" {
				used[r.Package] = true
			}
			for _, digest := range extensionPackages(r) {
				used[digest] = true
			}
		}
	}
	for _, svc := range list[serviceRecord](c.store, state.KindServices, "") {
		add(svc.Spec.Roles)
		for _, rev := range svc.Revisions {
			add(rev.Spec.Roles)
		}
	}
	insts, _ := c.instCache.list(c.store, state.KindInstances) // shared: read only
	for _, in := range insts {
		add([]api.RoleSpec{in.Spec})
	}
	// Published extensions, deployed or not: each server keeps them, as
	// it keeps the images.
	for _, ext := range list[api.Extension](c.store, state.KindExtensions, "") {
		if ext.Package != "" {
			used[ext.Package] = true
		}
	}
	return used
}

// RunPackages keeps this server's folder holding every package in use,
// copying what it lacks from the other servers, until ctx ends.
func (c *Controller) RunPackages(ctx context.Context) {
	if c.cfg.FetchPackage == nil {
		return
	}
	missing := func(context.Context) []string {
		var out []string
		for digest := range c.usedPackages() {
			if !c.packages.Has(digest) {
				out = append(out, digest)
			}
		}
		return out
	}
	peercopy.Keep(ctx, c.store, c.log, "package", missing, c.fetchPackage)
}
