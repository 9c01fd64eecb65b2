package vms

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/weftcloud/weft/api"
)

// Changes to a VM's size or disks are new versions of its service model:
// the fabric stops its instance and starts one with the new model, which
// takes over the same disks, so the guest reboots with its data.

// redeploy applies change to the VM's model and deploys it.
func (m *Manager) redeploy(ctx context.Context, tenant, name string, change func(*api.RoleSpec) error) (api.VM, error) {
	if _, err := m.Get(ctx, tenant, name); err != nil {
		return api.VM{}, err
	}
	svc, err := m.ctl.Service(ctx, tenant, name)
	if err != nil {
		return api.VM{}, err
	}
	spec := svc.Spec
	spec.Roles = slices.Clone(spec.Roles)
	role := &spec.Roles[0]
	role.Disks = slices.Clone(role.Disks)
	if err := change(role); err != nil {
		return api.VM{}, err
	}
	if _, err := m.ctl.Deploy(ctx, tenant, spec); err != nil {
		return api.VM{}, err
	}
	return m.Get(ctx, tenant, name)
}

// Resize gives the VM other CPUs or memory; it restarts with them.
func (m *Manager) Resize(ctx context.Context, tenant, name string, req api.ResizeVM) (api.VM, error) {
	if req.CPUs < 0 || req.Memory < 0 {
		return api.VM{}, api.Errorf(api.CodeInvalid, "cpus and memory must be positive")
	}
	return m.redeploy(ctx, tenant, name, func(r *api.RoleSpec) error {
		if req.CPUs > 0 {
			r.Size.CPU = req.CPUs
		}
		if req.Memory > 0 {
			r.Size.Memory = req.Memory
		}
		return m.fits(ctx, r.Size)
	})
}

// AttachDisk adds an empty data disk; the VM restarts with it (the next
// virtio disk: /dev/vdb for the first data disk).
func (m *Manager) AttachDisk(ctx context.Context, tenant, name string, size api.Bytes) (api.VM, error) {
	if size <= 0 {
		return api.VM{}, api.Errorf(api.CodeInvalid, "size: a data disk needs a positive size")
	}
	var disk api.DiskSpec
	vm, err := m.redeploy(ctx, tenant, name, func(r *api.RoleSpec) error {
		for i := 1; ; i++ {
			n := fmt.Sprintf("data%d", i)
			if !slices.ContainsFunc(r.Disks, func(d api.DiskSpec) bool { return d.Name == n }) {
				disk = m.disks.newDisk(tenant, name, randomSuffix(), n, size)
				break
			}
		}
		// Refused over quota before the disk is made; Deploy checks again.
		grown := api.ServiceSpec{Name: name, Roles: []api.RoleSpec{*r}}
		grown.Roles[0].Disks = append(slices.Clone(r.Disks), disk)
		if err := m.ctl.CheckQuota(tenant, api.ServiceSpec{Name: name, Roles: []api.RoleSpec{*r}}, grown); err != nil {
			disk = api.DiskSpec{}
			return err
		}
		if err := m.disks.Make(ctx, disk, nil); err != nil {
			return fmt.Errorf("vms: make disk %s: %w", disk.Name, err)
		}
		r.Disks = append(r.Disks, disk)
		return nil
	})
	if err != nil && disk.Blob != "" {
		m.deleteDisks(context.WithoutCancel(ctx), []api.DiskSpec{disk})
	}
	return vm, err
}

// DetachDisk removes a data disk from the VM, which restarts without it,
// and deletes the disk once no instance uses it.
func (m *Manager) DetachDisk(ctx context.Context, tenant, name, diskName string) (api.VM, error) {
	var gone api.DiskSpec
	vm, err := m.redeploy(ctx, tenant, name, func(r *api.RoleSpec) error {
		i := slices.IndexFunc(r.Disks, func(d api.DiskSpec) bool { return d.Name == diskName })
		switch {
		case i < 0:
			return api.Errorf(api.CodeNotFound, "VM %s has no disk %s", name, diskName)
		case i == 0:
			return api.Errorf(api.CodeInvalid, "%s is the OS disk: it cannot be detached", diskName)
		}
		gone = r.Disks[i]
		r.Disks = slices.Delete(r.Disks, i, i+1)
		return nil
	})
	if err != nil {
		return api.VM{}, err
	}
	go m.deleteWhenUnused(tenant, name, gone)
	return vm, nil
}

// deleteWhenUnused deletes a detached disk once every instance of the VM
// runs its latest model (or after a minute; its lease is broken first).
func (m *Manager) deleteWhenUnused(tenant, name string, disk api.DiskSpec) {
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		svc, err := m.ctl.Service(ctx, tenant, name)
		if err != nil {
			break
		}
		current := true
		for _, in := range m.ctl.Instances(ctx, tenant, name) {
			current = current && in.Version == svc.Version
		}
		if current {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	m.deleteDisks(ctx, []api.DiskSpec{disk})
}
