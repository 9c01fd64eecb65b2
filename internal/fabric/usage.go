package fabric

import (
	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Footprint is what the store says the tenants hold at this moment: the
// instances that run and the persistent VMs' disks. The meter reads it.
type Footprint struct {
	Running []RunningInstance
	Disks   []VMDisk
}

// RunningInstance is an instance whose state is running, whatever node it
// is on.
type RunningInstance struct {
	Tenant, Service, ID, Node string
	Runtime                   string
	Size                      api.Size
	// VM is set for the instance of a persistent VM (weft vm create).
	VM bool
}

// VMDisk is one disk of a persistent VM, as declared: it exists whether
// the VM runs or not.
type VMDisk struct {
	Tenant, Service, Name string
	Size                  api.Bytes
}

// Footprint reads the instances and services from the store. It takes no
// lock: every record is read from one consistent view per kind, which is
// all the meter needs (it samples).
func (c *Controller) Footprint() Footprint {
	var f Footprint
	for _, in := range c.sharedInstances() {
		if in.State != api.StateRunning {
			continue
		}
		f.Running = append(f.Running, RunningInstance{
			Tenant: in.Tenant, Service: in.Service, ID: in.ID, Node: in.Node,
			Runtime: in.Spec.Runtime, Size: in.Spec.Size,
			VM: in.Role == api.VMRole && in.Spec.Persistence == api.Persistent,
		})
	}
	for _, svc := range list[serviceRecord](c.store, state.KindServices, "") {
		if !svc.Spec.IsVM() {
			continue
		}
		for _, d := range svc.Spec.Roles[0].Disks {
			f.Disks = append(f.Disks, VMDisk{Tenant: svc.Tenant, Service: svc.Name, Name: d.Name, Size: d.Size})
		}
	}
	return f
}
