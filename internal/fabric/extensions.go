package fabric

import (
	"fmt"
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
// An extension's name, version and package are part of the role's
// template, so adding, removing or upgrading one rolls out like any
// change of the model, one update domain at a time, and a reimaged or
// relocated instance gets the extensions again from its template. Its
// settings are not: a change of them is handed to running instances (as
// live settings are), whose agent runs the extension's update handler.

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

// withoutExtensionSettings is role with its extensions' settings left
// out: what the template hash covers of them.
func withoutExtensionSettings(role api.RoleSpec) api.RoleSpec {
	if len(role.Extensions) == 0 {
		return role
	}
	exts := make([]api.ExtensionRef, len(role.Extensions))
	for i, e := range role.Extensions {
		exts[i] = api.ExtensionRef{Name: e.Name, Version: e.Version, Package: e.Package}
	}
	role.Extensions = exts
	return role
}

// handExtensionSettings gives the live instances of a role whose
// template they still run the role's current extension settings; their
// agents run the update handlers.
func (p *pass) handExtensionSettings() {
	for _, svc := range p.services {
		if svc.Status == api.ServiceDeleting {
			continue
		}
		for _, in := range p.instancesOf(svc) {
			idx := roleIndex(svc.Spec, in.Role)
			if idx < 0 || !in.live() {
				continue
			}
			role := svc.Spec.Roles[idx]
			if in.Template != templateHash(role) || reflect.DeepEqual(in.Spec.Extensions, role.Extensions) {
				continue
			}
			in.Spec.Extensions = append([]api.ExtensionRef(nil), role.Extensions...)
			in.Version = svc.Version
			p.touch(in)
			p.event(api.Event{Type: "instance.extensions", Tenant: in.Tenant, Service: in.Service, Role: in.Role, Instance: in.ID, Node: in.Node,
				Message: fmt.Sprintf("instance %s: extension settings of version %d handed to it without a restart", in.ID, svc.Version)})
		}
	}
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
