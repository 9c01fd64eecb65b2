package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
)

// vmCommand is `weft vm create|list|show|start|stop|restart|delete|extension|...`.
func (a *app) vmCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Manage persistent VMs (their disks live in the storage service)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("usage: weft vm create|list|show|start|stop|restart|resize|attach-disk|detach-disk|delete|migrate|exec|extension")
		},
	}
	cmd.AddCommand(a.vmCreateCommand(), a.vmListCommand(), a.vmShowCommand(),
		a.vmStateCommand("start", "Start a stopped VM", true), a.vmStateCommand("stop", "Stop a VM, keeping its disks", false),
		a.vmRestartCommand(), a.vmDeleteCommand(), a.vmMigrateCommand(),
		a.vmResizeCommand(), a.vmAttachDiskCommand(), a.vmDetachDiskCommand(), a.vmExtensionCommand(),
		a.execCommand("exec NAME -- COMMAND [ARGS...]", "Run a command in a VM through its guest agent",
			func(ctx context.Context, name string, cmd []string) (api.ExecResult, error) {
				return a.client().ExecVM(ctx, name, cmd)
			}))
	return cmd
}

func (a *app) vmCreateCommand() *cobra.Command {
	var req api.CreateVM
	var memory, disk string
	var dataDisks, ports []string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME --image IMG [--cpu N] [--memory SIZE] [--disk-size SIZE] [--data-disk SIZE] [--port NAME:GUESTPORT:PUBLICPORT] [--network NET]",
		Short: "Create a persistent VM",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if req.Image == "" {
				return usagef("--image: the VM's image is required (weft image list)")
			}
			var err error
			if req.Memory, err = optionalBytes("--memory", memory); err != nil {
				return err
			}
			if req.Disk, err = optionalBytes("--disk-size", disk); err != nil {
				return err
			}
			for _, d := range dataDisks {
				b, err := optionalBytes("--data-disk", d)
				if err != nil {
					return err
				}
				req.DataDisks = append(req.DataDisks, b)
			}
			for _, p := range ports {
				port, err := parseVMPort(p)
				if err != nil {
					return err
				}
				req.Ports = append(req.Ports, port)
			}
			if !a.jsonOutput() {
				fmt.Fprintf(a.stderr, "creating VM %s: copying image %s to its disk\n", req.Name, req.Image)
			}
			vm, err := a.client().CreateVM(cmd.Context(), req)
			if err != nil {
				return err
			}
			if wait {
				if vm, err = a.waitVM(cmd.Context(), vm.Name, timeout, func(vm api.VM) bool {
					return vm.State == api.StateRunning && vm.Health == api.HealthHealthy
				}); err != nil {
					return err
				}
			}
			return a.printVM(vm)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Image, "image", "", "the vm image to make the OS disk from")
	f.Float64Var(&req.CPUs, "cpu", 0, "virtual CPUs (default 1)")
	f.StringVar(&memory, "memory", "", "memory, e.g. 256Mi (default 256Mi)")
	f.StringVar(&disk, "disk-size", "", "OS disk size, at least the image's (default: the image's)")
	f.StringArrayVar(&dataDisks, "data-disk", nil, "an empty data disk of this size (repeatable)")
	f.StringArrayVar(&ports, "port", nil, "publish a guest port: NAME:GUESTPORT:PUBLICPORT (repeatable)")
	f.StringVar(&req.Network, "network", "", "join this virtual network (weft network list) with a private address the VM keeps")
	f.BoolVar(&wait, "wait", false, "wait until the VM runs and its guest agent answers")
	f.DurationVar(&timeout, "timeout", 3*time.Minute, "how long --wait waits")
	aliases(cmd, map[string]string{"cpus": "cpu", "disk": "disk-size"})
	return cmd
}

func optionalBytes(flag, v string) (api.Bytes, error) {
	if v == "" {
		return 0, nil
	}
	b, err := api.ParseBytes(v)
	if err != nil {
		return 0, usagef("%s: %v", flag, err)
	}
	return b, nil
}

// parseVMPort reads NAME:GUESTPORT:PUBLICPORT.
func parseVMPort(s string) (api.VMPort, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return api.VMPort{}, usagef("--port: %q is not NAME:GUESTPORT:PUBLICPORT", s)
	}
	guest, err1 := strconv.Atoi(parts[1])
	public, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil {
		return api.VMPort{}, usagef("--port: %q: the ports must be numbers", s)
	}
	return api.VMPort{Name: parts[0], GuestPort: guest, PublicPort: public}, nil
}

func (a *app) vmListCommand() *cobra.Command {
	return a.allTenantsFlag(&cobra.Command{
		Use:   "list",
		Short: "List persistent VMs",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			vms, err := a.client().VMs(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(nonNil(vms))
			}
			w := a.table()
			row(w, a.tenantCol("TENANT", "NAME", "IMAGE", "CPUS", "MEMORY", "DISKS", "STATE", "HEALTH", "NODE", "AGE")...)
			for _, vm := range vms {
				row(w, a.tenantCol(vm.Tenant, vm.Name, vm.Image, vm.CPUs, vm.Memory.String(), diskList(vm.Disks), vm.State, vm.Health, orDash(vm.Node), age(a.now(), vm.CreatedAt))...)
			}
			return w.Flush()
		},
	})
}

func diskList(disks []api.DiskSpec) string {
	out := make([]string, len(disks))
	for i, d := range disks {
		out[i] = d.Name + ":" + d.Size.String()
	}
	return strings.Join(out, ",")
}

func (a *app) vmShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a persistent VM",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, err := a.client().VM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printVM(vm)
		},
	}
}

func (a *app) printVM(vm api.VM) error {
	if a.jsonOutput() {
		return a.printJSON(vm)
	}
	w := a.table()
	row(w, "Name:", vm.Name)
	row(w, "Image:", vm.Image)
	row(w, "Size:", fmt.Sprintf("%g CPU, %s", vm.CPUs, vm.Memory.String()))
	for _, d := range vm.Disks {
		row(w, "Disk:", fmt.Sprintf("%s %s (page blob %s)", d.Name, d.Size.String(), d.Blob))
	}
	for _, p := range vm.Ports {
		row(w, "Port:", fmt.Sprintf("%s: guest %d, public %d", p.Name, p.GuestPort, p.PublicPort))
	}
	if vm.Network != "" {
		row(w, "Network:", fmt.Sprintf("%s, address %s", vm.Network, orDash(vm.PrivateAddress)))
	}
	row(w, "State:", fmt.Sprintf("%s/%s", vm.State, vm.Health))
	row(w, "Node:", orDash(vm.Node))
	row(w, "Instance:", orDash(vm.Instance))
	if m := vm.Migration; m != nil {
		row(w, "Migrating:", fmt.Sprintf("from %s to %s since %s", m.From, m.To, m.Started.Format(time.RFC3339)))
	}
	if m := vm.LastMigration; m != nil {
		outcome := fmt.Sprintf("%s in %s, downtime %s", m.To, m.Total.Round(time.Millisecond), m.Downtime.Round(time.Millisecond))
		if m.Error != "" {
			outcome = "to " + m.To + " failed: " + m.Error
		}
		row(w, "Last migration:", outcome)
	}
	for _, e := range vm.Extensions {
		row(w, "Extension:", extensionSummary(e))
	}
	for _, e := range vm.Extensions {
		if e.Status != nil && e.Status.Figures != nil {
			row(w, "Guest:", figuresSummary(*e.Status.Figures))
		}
	}
	return w.Flush()
}

func (a *app) vmStateCommand(verb, short string, running bool) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			vm, err := a.setVMRunning(cmd.Context(), args[0], running, wait, timeout)
			if err != nil {
				return err
			}
			return a.printVM(vm)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the VM is "+map[bool]string{true: "running and healthy", false: "stopped"}[running])
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long --wait waits")
	return cmd
}

func (a *app) setVMRunning(ctx context.Context, name string, running, wait bool, timeout time.Duration) (api.VM, error) {
	c := a.client()
	var vm api.VM
	var err error
	if running {
		vm, err = c.StartVM(ctx, name)
	} else {
		vm, err = c.StopVM(ctx, name)
	}
	if err != nil || !wait {
		return vm, err
	}
	return a.waitVM(ctx, name, timeout, func(vm api.VM) bool {
		if running {
			return vm.State == api.StateRunning && vm.Health == api.HealthHealthy
		}
		return vm.Instance == ""
	})
}

func (a *app) vmRestartCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart NAME",
		Short: "Stop a VM and start it again (possibly on another node)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := a.setVMRunning(cmd.Context(), args[0], false, true, timeout); err != nil {
				return err
			}
			vm, err := a.setVMRunning(cmd.Context(), args[0], true, true, timeout)
			if err != nil {
				return err
			}
			return a.printVM(vm)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait for each step")
	return cmd
}

func (a *app) vmDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a VM and its disks",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteVM(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !a.jsonOutput() {
				fmt.Fprintf(a.stdout, "VM %s deleted; its disks go once it has stopped\n", args[0])
			}
			return nil
		},
	}
}

// waitVM polls until done holds, printing state changes on stderr.
func (a *app) waitVM(ctx context.Context, name string, timeout time.Duration, done func(api.VM) bool) (api.VM, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		vm, err := a.client().VM(ctx, name)
		if err != nil {
			return vm, err
		}
		if done(vm) {
			return vm, nil
		}
		if s := vm.State + "/" + vm.Health; s != last && !a.jsonOutput() {
			on := ""
			if vm.Node != "" { // none until it is placed
				on = " on " + vm.Node
			}
			fmt.Fprintf(a.stderr, "VM %s: %s%s\n", name, s, on)
			last = s
		}
		if time.Now().After(deadline) {
			return vm, fmt.Errorf("VM %s is still %s/%s after %s", name, vm.State, vm.Health, timeout)
		}
		select {
		case <-ctx.Done():
			return vm, ctx.Err()
		case <-time.After(a.pollInterval):
		}
	}
}

func (a *app) vmMigrateCommand() *cobra.Command {
	var to string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "migrate NAME [--to NODE]",
		Short: "Move a running VM to another node by live migration: its guest keeps running",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			vm, err := c.MigrateVM(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			m := vm.Migration
			if m == nil {
				return fmt.Errorf("VM %s: the migration did not start", args[0])
			}
			fmt.Fprintf(a.stderr, "migrating %s from %s to %s...\n", vm.Name, m.From, m.To)
			vm, err = a.waitVM(cmd.Context(), args[0], timeout, func(v api.VM) bool { return v.Migration == nil || v.Migration.ID != m.ID })
			if err != nil {
				return err
			}
			res := vm.LastMigration
			if res == nil || res.ID != m.ID {
				return fmt.Errorf("VM %s: the migration to %s ended without a result", vm.Name, m.To)
			}
			if res.Error != "" {
				return fmt.Errorf("VM %s: migration to %s failed: %s", vm.Name, m.To, res.Error)
			}
			if a.jsonOutput() {
				return a.printJSON(vm)
			}
			fmt.Fprintf(a.stdout, "migrated %s from %s to %s in %s (downtime %s)\n", vm.Name, res.From, res.To,
				res.Total.Round(time.Millisecond), res.Downtime.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the node to move to (default: the fabric chooses)")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the migration")
	return cmd
}

// vmChangeCommand is a verb that gives a VM a new model (size, disks): the
// VM restarts with it, as a new instance on the same disks; --wait waits
// for that instance to be healthy.
func (a *app) vmChangeCommand(use, short string, args cobra.PositionalArgs, flags func(*cobra.Command),
	change func(ctx context.Context, args []string) (api.VM, error)) *cobra.Command {
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			before, err := a.client().VM(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			vm, err := change(cmd.Context(), args)
			if err != nil {
				return err
			}
			if wait && before.Running {
				vm, err = a.waitVM(cmd.Context(), args[0], timeout, func(v api.VM) bool {
					return v.Instance != before.Instance && v.State == api.StateRunning && v.Health == api.HealthHealthy
				})
				if err != nil {
					return err
				}
			}
			return a.printVM(vm)
		},
	}
	flags(cmd)
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the VM runs again with the change")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long --wait waits")
	return cmd
}

func (a *app) vmResizeCommand() *cobra.Command {
	var cpus float64
	var memory string
	return a.vmChangeCommand("resize NAME [--cpu N] [--memory SIZE]", "Give a VM other CPUs or memory (it restarts)", exactArgs("NAME"),
		func(cmd *cobra.Command) {
			cmd.Flags().Float64Var(&cpus, "cpu", 0, "CPUs")
			aliases(cmd, map[string]string{"cpus": "cpu"})
			cmd.Flags().StringVar(&memory, "memory", "", "memory, e.g. 512Mi")
		},
		func(ctx context.Context, args []string) (api.VM, error) {
			mem, err := optionalBytes("--memory", memory)
			if err != nil {
				return api.VM{}, err
			}
			if cpus == 0 && mem == 0 {
				return api.VM{}, usagef("resize: give --cpu or --memory")
			}
			return a.client().ResizeVM(ctx, args[0], api.ResizeVM{CPUs: cpus, Memory: mem})
		})
}

func (a *app) vmAttachDiskCommand() *cobra.Command {
	var size string
	return a.vmChangeCommand("attach-disk NAME --disk-size SIZE", "Add an empty data disk to a VM (it restarts)", exactArgs("NAME"),
		func(cmd *cobra.Command) {
			cmd.Flags().StringVar(&size, "disk-size", "", "the disk's size, e.g. 1Gi")
			aliases(cmd, map[string]string{"size": "disk-size"})
		},
		func(ctx context.Context, args []string) (api.VM, error) {
			b, err := optionalBytes("--disk-size", size)
			if err != nil {
				return api.VM{}, err
			}
			if b == 0 {
				return api.VM{}, usagef("attach-disk: --disk-size is required")
			}
			return a.client().AttachDisk(ctx, args[0], b)
		})
}

func (a *app) vmDetachDiskCommand() *cobra.Command {
	return a.vmChangeCommand("detach-disk NAME DISK", "Remove a data disk from a VM and delete it (the VM restarts)", exactArgs("NAME", "DISK"),
		func(*cobra.Command) {},
		func(ctx context.Context, args []string) (api.VM, error) {
			return a.client().DetachDisk(ctx, args[0], args[1])
		})
}
