package fabric

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/extensions"
)

// Extensions of roles (api.ExtensionRef). At deploy each is resolved to a
// published (or built-in) version, pinned with its package, its settings
// checked against its schema, and its protected settings sealed
// (Config.Sealer): the stored model keeps only the sealed text, and only
// the assignments of the node that runs an instance carry them open.
//
// Extensions are not part of the role's template: changing them restarts
// no instance. They are handed to running instances (handExtensions),
// whose agents run the handlers, and a new instance (a relocation, a
// new slot) starts with the role's current ones; a reimage makes the
// agent apply them all again.

// resolveExtensions pins each role's extensions and seals their protected
// settings, naming every extension that does not exist or whose settings
// its schema refuses.
func (c *Controller) resolveExtensions(tenant string, spec *api.ServiceSpec) error {
	var problems []string
	for i := range spec.Roles {
		role := &spec.Roles[i]
		exts := make([]api.ExtensionRef, len(role.Extensions))
		for j, ref := range role.Extensions {
			at := fmt.Sprintf("roles[%d].extensions[%d]", i, j)
			ext, ok := extensions.Lookup(c.store, tenant, ref.Name, ref.Version)
			if !ok {
				what := "no extension named " + ref.Name
				if ref.Version != "" {
					what = fmt.Sprintf("no extension %s version %s", ref.Name, ref.Version)
				}
				problems = append(problems, fmt.Sprintf("%s: %s (weft extension list shows what there is; weft extension publish adds one)", at, what))
				continue
			}
			if err := ext.CheckSettings(at, ref); err != nil {
				problems = append(problems, err.Error())
				continue
			}
			ref.Version, ref.Package = ext.Version, ext.Package
			if len(ref.ProtectedSettings) > 0 {
				if c.cfg.Sealer == nil {
					problems = append(problems, at+".protectedSettings: this server has no key to seal protected settings with")
					continue
				}
				sealed, err := c.cfg.Sealer.Seal(extensions.Binding(tenant, spec.Name, role.Name, ref.Name), ref.ProtectedSettings)
				if err != nil {
					return err
				}
				ref.Sealed = sealed
			} else if ref.Sealed != "" {
				// A model read back from the API and deployed again keeps
				// its sealed settings only if they open for this place.
				if c.cfg.Sealer == nil {
					problems = append(problems, at+".sealed: this server has no key to open sealed settings with")
					continue
				}
				if _, err := c.cfg.Sealer.Unseal(extensions.Binding(tenant, spec.Name, role.Name, ref.Name), ref.Sealed); err != nil {
					problems = append(problems, at+".sealed: "+err.Error()+": give protectedSettings instead")
					continue
				}
			}
			ref.ProtectedSettings = nil
			exts[j] = ref
		}
		if len(exts) > 0 {
			role.Extensions = exts
		}
	}
	if len(problems) > 0 {
		return api.Errorf(api.CodeInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// withoutExtensions is role without its extensions: they are not part
// of its template.
func withoutExtensions(role api.RoleSpec) api.RoleSpec {
	role.Extensions = nil
	return role
}

// handExtensions gives the live instances of each role whose template
// they run the role's extensions, in place; their agents run the
// handlers. A change of settings, an extension added or removed reaches
// every instance at once; a new version of an extension the instance
// has goes one update domain at a time: a domain gets it once every
// instance of the lower domains runs the role's extensions and reports
// each settled (success or error) at its version.
func (p *pass) handExtensions() {
	for _, svc := range p.services {
		if svc.Status == api.ServiceDeleting {
			continue
		}
		insts := p.instancesOf(svc)
		for _, role := range svc.Spec.Roles {
			var mine []*instanceRecord
			hash := templateHash(role)
			for _, in := range insts {
				if in.Role == role.Name && in.live() && in.Template == hash {
					mine = append(mine, in)
				}
			}
			// The lowest domain whose instances are not yet done with the
			// role's extensions: versions go no further than it.
			limit := math.MaxInt
			for _, in := range mine {
				if !extensionsSettled(in, role.Extensions) {
					limit = min(limit, in.UpdateDomain)
				}
			}
			for _, in := range mine {
				if reflect.DeepEqual(in.Spec.Extensions, role.Extensions) {
					continue
				}
				if newVersion(in.Spec.Extensions, role.Extensions) && in.UpdateDomain > limit {
					continue
				}
				in.Spec.Extensions = append([]api.ExtensionRef(nil), role.Extensions...)
				in.Version = svc.Version
				p.touch(in)
				p.event(api.Event{Type: "instance.extensions", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
					Message: fmt.Sprintf("instance %s: the extensions of version %d handed to it without a restart (update domain %d)", in.ID, svc.Version, in.UpdateDomain)})
			}
		}
	}
}

// extensionsSettled reports whether an instance runs want and its node
// reports every one of them at its version, not transitioning.
func extensionsSettled(in *instanceRecord, want []api.ExtensionRef) bool {
	if !reflect.DeepEqual(in.Spec.Extensions, want) {
		return false
	}
	for _, ref := range want {
		settled := false
		for _, st := range in.Extensions {
			if st.Name == ref.Name && st.Version == ref.Version && st.Status != api.ExtensionTransitioning {
				settled = true
			}
		}
		if !settled {
			return false
		}
	}
	return true
}

// newVersion reports whether want has another version of an extension
// has has.
func newVersion(has, want []api.ExtensionRef) bool {
	for _, w := range want {
		for _, h := range has {
			if h.Name == w.Name && h.Version != w.Version {
				return true
			}
		}
	}
	return false
}

// openExtensions is an assignment's role with its extensions' protected
// settings opened, for the node that runs the instance. Settings that do
// not open are left out, and the agent reports the extension failing.
func (c *Controller) openExtensions(rec instanceRecord) api.RoleSpec {
	role := rec.Spec
	if len(role.Extensions) == 0 {
		return role
	}
	role.Extensions = append([]api.ExtensionRef(nil), role.Extensions...)
	for i := range role.Extensions {
		ref := &role.Extensions[i]
		if ref.Sealed == "" {
			continue
		}
		if c.cfg.Sealer == nil {
			c.log.Error("no key to open an extension's protected settings", "instance", rec.ID, "extension", ref.Name)
			continue
		}
		open, err := c.cfg.Sealer.Unseal(extensions.Binding(rec.Tenant, rec.Service, rec.Role, ref.Name), ref.Sealed)
		if err != nil {
			c.log.Error("an extension's protected settings do not open", "instance", rec.ID, "extension", ref.Name, "err", err)
			continue
		}
		ref.ProtectedSettings, ref.Sealed = open, ""
	}
	return role
}

// extensionChanges lists how two roles' extensions differ, their
// sealed settings named by a fingerprint rather than their long text.
func extensionChanges(old, new api.RoleSpec) []api.FieldChange {
	fingerprint := func(refs []api.ExtensionRef) []api.ExtensionRef {
		out := append([]api.ExtensionRef(nil), refs...)
		for i := range out {
			if out[i].Sealed != "" {
				sum := sha256.Sum256([]byte(out[i].Sealed))
				out[i].Sealed = "sealed:" + hex.EncodeToString(sum[:6])
			}
		}
		return out
	}
	if reflect.DeepEqual(old.Extensions, new.Extensions) {
		return nil
	}
	return diffJSON("extensions", fingerprint(old.Extensions), fingerprint(new.Extensions))
}

// extensionPackages lists the packages of a role's extensions.
func extensionPackages(role api.RoleSpec) []string {
	var out []string
	for _, e := range role.Extensions {
		if e.Package != "" {
			out = append(out, e.Package)
		}
	}
	return out
}
