package client

import (
	"context"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// CreateVM makes a persistent VM: its disks, then its one instance.
func (c *Client) CreateVM(ctx context.Context, req api.CreateVM) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "POST", "/v1/vms", nil, req, &vm)
	return vm, err
}

// VMs lists the persistent VMs.
func (c *Client) VMs(ctx context.Context) ([]api.VM, error) {
	return listAll[api.VM](ctx, c, "/v1/vms", nil)
}

// VM returns one persistent VM.
func (c *Client) VM(ctx context.Context, name string) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "GET", vmPath(name), nil, nil, &vm)
	return vm, err
}

// StartVM runs a stopped VM again (on any node: its disks follow it).
func (c *Client) StartVM(ctx context.Context, name string) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "POST", vmPath(name)+"/start", nil, nil, &vm)
	return vm, err
}

// MigrateVM starts a live migration of a running VM to node to (empty: the
// fabric chooses); the returned VM's Migration describes it.
func (c *Client) MigrateVM(ctx context.Context, name, to string) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "POST", vmPath(name)+"/migrate", nil, api.MigrateVM{To: to}, &vm)
	return vm, err
}

// ResizeVM gives a VM other CPUs or memory; it restarts with them.
func (c *Client) ResizeVM(ctx context.Context, name string, req api.ResizeVM) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "POST", vmPath(name)+"/resize", nil, req, &vm)
	return vm, err
}

// AttachDisk adds an empty data disk to a VM; it restarts with it.
func (c *Client) AttachDisk(ctx context.Context, name string, size api.Bytes) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "POST", vmPath(name)+"/disks", nil, api.AttachDisk{Size: size}, &vm)
	return vm, err
}

// DetachDisk removes a data disk from a VM and deletes it.
func (c *Client) DetachDisk(ctx context.Context, name, disk string) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "DELETE", vmPath(name)+"/disks/"+url.PathEscape(disk), nil, nil, &vm)
	return vm, err
}

// StopVM stops a VM's instance and keeps its disks.
func (c *Client) StopVM(ctx context.Context, name string) (api.VM, error) {
	var vm api.VM
	_, err := c.Do(ctx, "POST", vmPath(name)+"/stop", nil, nil, &vm)
	return vm, err
}

// DeleteVM deletes a VM and then its disks.
func (c *Client) DeleteVM(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", vmPath(name), nil, nil, nil)
	return err
}

// VMExtensions lists a VM's extensions and how each fares.
func (c *Client) VMExtensions(ctx context.Context, name string) ([]api.VMExtension, error) {
	var out []api.VMExtension
	_, err := c.Do(ctx, "GET", vmPath(name)+"/extensions", nil, nil, &out)
	return out, err
}

// SetVMExtension adds an extension to a VM or changes its version or
// settings; protected settings left out keep those set before.
func (c *Client) SetVMExtension(ctx context.Context, name, extension string, req api.SetVMExtension) (api.VMExtension, error) {
	var out api.VMExtension
	_, err := c.Do(ctx, "PUT", vmPath(name)+"/extensions/"+url.PathEscape(extension), nil, req, &out)
	return out, err
}

// RemoveVMExtension takes an extension off a VM.
func (c *Client) RemoveVMExtension(ctx context.Context, name, extension string) error {
	_, err := c.Do(ctx, "DELETE", vmPath(name)+"/extensions/"+url.PathEscape(extension), nil, nil, nil)
	return err
}

func vmPath(name string) string { return "/v1/vms/" + url.PathEscape(name) }

// ExecVM runs a command in a persistent VM through its guest agent.
func (c *Client) ExecVM(ctx context.Context, name string, command []string) (api.ExecResult, error) {
	var res api.ExecResult
	_, err := c.Do(ctx, "POST", vmPath(name)+"/exec", nil, api.ExecRequest{Command: command}, &res)
	return res, err
}

// Exec runs a command inside an instance (container and vm runtimes).
func (c *Client) Exec(ctx context.Context, instance string, command []string) (api.ExecResult, error) {
	var res api.ExecResult
	_, err := c.Do(ctx, "POST", "/v1/instances/"+url.PathEscape(instance)+"/exec", nil, api.ExecRequest{Command: command}, &res)
	return res, err
}
