package fabric

import (
	"context"
	"fmt"

	"github.com/weftcloud/weft/api"
)

// ensureDrives makes the drives of every slot spec runs that has none yet,
// before the model that asks for them is stored: an instance is never
// assigned without its drives. A slot scaled away keeps its drives, and
// finds them again when it comes back. When one cannot be made (over the
// tenant's disk quota), those it made are deleted again. c.mu is held, so
// no other deploy of the service makes or uses them meanwhile.
func (c *Controller) ensureDrives(ctx context.Context, tenant string, spec api.ServiceSpec) (err error) {
	var made []string
	defer func() {
		if err == nil {
			return
		}
		for _, name := range made {
			if derr := c.cfg.Drives.Delete(context.WithoutCancel(ctx), tenant, name); derr != nil {
				c.log.Warn("drive made for a refused model not deleted", "tenant", tenant, "drive", name, "err", derr)
			}
		}
	}()
	for _, r := range spec.Roles {
		if len(r.Drives) == 0 {
			continue
		}
		if c.cfg.Drives == nil {
			return api.Errorf(api.CodeInvalid, "roles: role %s has drives, and this controller runs no storage service to keep them", r.Name)
		}
		for slot := range r.Instances {
			for _, d := range r.Drives {
				s := api.DriveSlot{Service: spec.Name, Role: r.Name, Slot: slot, Drive: d.Name}
				fresh, err := c.cfg.Drives.EnsureSlot(ctx, tenant, s, d.Size)
				if err != nil {
					return fmt.Errorf("fabric: drive %s of %s slot %d: %w", d.Name, r.Name, slot, err)
				}
				if fresh {
					made = append(made, api.SlotDriveName(s.Service, s.Role, s.Slot, s.Drive))
				}
			}
		}
	}
	return nil
}

// planDrives says which drives of a role's slots a deploy would make and
// which it would keep (ensureDrives).
func (c *Controller) planDrives(tenant, service string, r api.RoleSpec) (makes, keeps []string) {
	if c.cfg.Drives == nil {
		return nil, nil
	}
	for slot := range r.Instances {
		for _, d := range r.Drives {
			name := api.SlotDriveName(service, r.Name, slot, d.Name)
			if _, err := c.cfg.Drives.Get(tenant, name); err != nil {
				makes = append(makes, name)
			} else {
				keeps = append(keeps, name)
			}
		}
	}
	return makes, keeps
}

// driveAccess grants the node running an instance access to its slot's
// drives; an instance without them fails to start on the node, which says
// why.
func (c *Controller) driveAccess(rec instanceRecord) []api.DiskAccess {
	if len(rec.Spec.Drives) == 0 || c.cfg.Drives == nil {
		return nil
	}
	var out []api.DiskAccess
	for _, d := range rec.Spec.Drives {
		name := api.SlotDriveName(rec.Service, rec.Role, rec.Slot, d.Name)
		a, err := c.cfg.Drives.Access(rec.Tenant, name)
		if err != nil {
			c.log.Error("no access to a drive for its instance", "instance", rec.ID, "drive", name, "err", err)
			return nil
		}
		a.Name = d.Name
		out = append(out, a)
	}
	return out
}

// deleteDrives deletes the drives of a deleted service's slots, unless it
// was deleted keeping them. It runs after the service is gone from the
// state, so no instance of it is assigned any more.
func (c *Controller) deleteDrives(ctx context.Context, svc *serviceRecord) {
	if c.cfg.Drives == nil || svc.KeepDrives {
		return
	}
	if err := c.cfg.Drives.DeleteService(ctx, svc.Tenant, svc.Name); err != nil {
		c.log.Warn("drives of a deleted service not deleted", "tenant", svc.Tenant, "service", svc.Name, "err", err)
	}
}
