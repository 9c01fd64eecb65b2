package vms

import (
	"context"
	"slices"

	"github.com/weftcloud/weft/api"
)

// A VM's extensions are its role's (api.RoleSpec.Extensions): setting or
// removing one deploys the VM's model with its extensions changed, which
// restarts nothing (extensions are not part of a role's template); the
// node's agent has the guest agent run the handlers, and the instance's
// statuses come back with it.

// Extensions lists the VM's extensions and how each fares.
func (m *Manager) Extensions(ctx context.Context, tenant, name string) ([]api.VMExtension, error) {
	vm, err := m.Get(ctx, tenant, name)
	if err != nil {
		return nil, err
	}
	if vm.Extensions == nil {
		return []api.VMExtension{}, nil
	}
	return vm.Extensions, nil
}

// SetExtension adds the extension ext to the VM, or gives it another
// version or settings. Protected settings not given keep those set
// before. The controller checks the extension exists and its settings
// against its schema, as at any deploy.
func (m *Manager) SetExtension(ctx context.Context, tenant, name, ext string, req api.SetVMExtension) (api.VMExtension, error) {
	vm, err := m.redeploy(ctx, tenant, name, func(r *api.RoleSpec) error {
		ref := api.ExtensionRef{Name: ext, Version: req.Version, Settings: req.Settings, ProtectedSettings: req.ProtectedSettings}
		r.Extensions = slices.Clone(r.Extensions)
		i := slices.IndexFunc(r.Extensions, func(e api.ExtensionRef) bool { return e.Name == ext })
		if i < 0 {
			r.Extensions = append(r.Extensions, ref)
			return nil
		}
		if len(ref.ProtectedSettings) == 0 {
			ref.Sealed = r.Extensions[i].Sealed
		}
		r.Extensions[i] = ref
		return nil
	})
	if err != nil {
		return api.VMExtension{}, err
	}
	for _, e := range vm.Extensions {
		if e.Name == ext {
			return e, nil
		}
	}
	return api.VMExtension{Name: ext, Version: req.Version}, nil
}

// RemoveExtension takes the extension ext off the VM: the guest agent
// runs its disable and uninstall handlers and removes its files.
func (m *Manager) RemoveExtension(ctx context.Context, tenant, name, ext string) error {
	_, err := m.redeploy(ctx, tenant, name, func(r *api.RoleSpec) error {
		i := slices.IndexFunc(r.Extensions, func(e api.ExtensionRef) bool { return e.Name == ext })
		if i < 0 {
			return api.Errorf(api.CodeNotFound, "VM %s has no extension %s", name, ext)
		}
		r.Extensions = slices.Delete(slices.Clone(r.Extensions), i, i+1)
		return nil
	})
	return err
}

// extensionsOf is what the VM shows of its role's extensions, with the
// statuses its instance reported (nil before it reported any).
func extensionsOf(refs []api.ExtensionRef, statuses []api.ExtensionStatus) []api.VMExtension {
	var out []api.VMExtension
	for _, ref := range refs {
		e := api.VMExtension{Name: ref.Name, Version: ref.Version, Settings: ref.Settings, Protected: ref.Sealed != "" || len(ref.ProtectedSettings) > 0}
		for _, st := range statuses {
			if st.Name == ref.Name {
				e.Status = &st
			}
		}
		out = append(out, e)
	}
	return out
}
