// Package vms is the persistent VM API on the controller (IaaS): a VM is a
// service of one persistent vm instance whose disks are page blobs in the
// storage service, made here from the image's disk, so a VM keeps its disks
// whichever node runs it. The fabric places, heals and relocates the instance
// like any other; nodes get a SAS for each disk of the instances they run.
package vms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/vmdisk"
)

// container holds every VM disk.
const container = "disks"

// Defaults for a VM created without them.
const (
	DefaultCPUs   = 1
	DefaultMemory = 256 << 20
)

// sasLifetime bounds how long a node can use a disk's SAS; the lease on the
// disk, not the SAS, is what fences a node that lost the VM.
const sasLifetime = 365 * 24 * time.Hour

// Disks keeps VM disks in the storage service's system account.
type Disks struct {
	blobs   *blobclient.Client
	url     string
	account string
	key     []byte
	servers func() []string // every server's blob endpoint; nil: only url
}

// NewDisks returns the disk store at the blob service's base URL; with
// url "" (no storage service) every VM operation that needs disks fails.
func NewDisks(url, account string, key []byte) *Disks {
	d := &Disks{url: url, account: account, key: key}
	if url != "" {
		d.blobs = blobclient.New(url, account, key)
	}
	return d
}

// ServedBy tells the disks every server's blob endpoint: the storage is
// replicated, and a node turns to another server when one is lost.
func (d *Disks) ServedBy(servers func() []string) { d.servers = servers }

// Init makes the disks' blob container.
func (d *Disks) Init(ctx context.Context) error {
	if d.blobs == nil {
		return nil
	}
	return d.blobs.CreateContainer(ctx, container)
}

// Access grants a node access to one disk: the fabric's Config.DiskAccess.
// The disk stays where it was made: on the storage of the server that led
// then, which need not lead now (the system account and its key are the
// same on every server).
func (d *Disks) Access(disk api.DiskSpec) (api.DiskAccess, error) {
	if d.blobs == nil {
		return api.DiskAccess{}, errors.New("vms: no storage service")
	}
	sas := storage.BlobSAS(d.account, d.key, container, disk.Blob, "rw", time.Now().Add(sasLifetime))
	access := api.DiskAccess{
		Name: disk.Name, Size: int64(disk.Size), BlobEndpoint: d.home(disk), Account: d.account,
		Container: container, Blob: disk.Blob, SAS: sas.Encode(),
	}
	if d.servers != nil {
		for _, u := range d.servers() {
			if u != access.BlobEndpoint {
				access.BlobEndpoints = append(access.BlobEndpoints, u)
			}
		}
	}
	return access, nil
}

// home is the blob endpoint whose storage holds a disk.
func (d *Disks) home(disk api.DiskSpec) string {
	if disk.Endpoint != "" {
		return disk.Endpoint
	}
	return d.url
}

// client talks to the storage that holds a disk.
func (d *Disks) client(disk api.DiskSpec) *blobclient.Client {
	if home := d.home(disk); home != d.url {
		return blobclient.New(home, d.account, d.key)
	}
	return d.blobs
}

// newDisk is a disk of a tenant's VM, to be made on this server's storage.
func (d *Disks) newDisk(tenant, vm, suffix, name string, size api.Bytes) api.DiskSpec {
	return d.Spec(tenant+"-"+vm+"-"+suffix+"-"+name, name, size)
}

// Spec is a disk to be made on this server's storage in page blob blob.
func (d *Disks) Spec(blob, name string, size api.Bytes) api.DiskSpec {
	return api.DiskSpec{Name: name, Size: size, Blob: blob, Endpoint: d.url}
}

// Ready fails with CodeUnavailable when there is no storage service.
func (d *Disks) Ready(what string) error {
	if d.blobs == nil {
		return api.Errorf(api.CodeUnavailable, "%s need the storage service, and this server runs without it", what)
	}
	return nil
}

// Make creates the disk's page blob, holding the raw image src (nil: all
// zeros). It fails with blobclient.ErrExists if the blob is there.
func (d *Disks) Make(ctx context.Context, disk api.DiskSpec, src io.Reader) error {
	c := d.client(disk)
	err := vmdisk.Create(ctx, c, container, disk.Blob, int64(disk.Size), src)
	if errors.Is(err, blobclient.ErrNotFound) {
		// The container is made when the server starts (Init), once the
		// storage service is up; a disk asked for in between (a deploy
		// right after the start) makes it here. Create has read nothing
		// of src by then: the page blob was not made.
		if err = c.CreateContainer(ctx, container); err == nil {
			err = vmdisk.Create(ctx, c, container, disk.Blob, int64(disk.Size), src)
		}
	}
	return err
}

// Copy makes disk's page blob a copy of snapshot snap of src (src itself
// when snap is ""). The copy is made where src lives, so disk.Endpoint
// must be src's.
func (d *Disks) Copy(ctx context.Context, disk, src api.DiskSpec, snap string) error {
	if d.home(disk) != d.home(src) {
		return fmt.Errorf("vms: copy %s: the copy must be made on the storage holding %s", src.Blob, src.Blob)
	}
	return d.client(src).CopyFrom(ctx, container, disk.Blob, container, src.Blob, snap)
}

// Snapshot takes a snapshot of the disk and returns its time.
func (d *Disks) Snapshot(ctx context.Context, disk api.DiskSpec) (string, error) {
	return d.client(disk).Snapshot(ctx, container, disk.Blob)
}

// Delete breaks the disk's lease (a node may still hold it) and deletes it
// with its snapshots; a disk already gone is not an error.
func (d *Disks) Delete(ctx context.Context, disk api.DiskSpec) error {
	c := d.client(disk)
	// ErrLease: there is no lease to break.
	if err := c.BreakLease(ctx, container, disk.Blob); err != nil && !errors.Is(err, blobclient.ErrNotFound) && !errors.Is(err, blobclient.ErrLease) {
		return fmt.Errorf("vms: break the lease of %s: %w", disk.Blob, err)
	}
	if err := c.Delete(ctx, container, disk.Blob); err != nil {
		return fmt.Errorf("vms: delete %s: %w", disk.Blob, err)
	}
	return nil
}

// Manager creates and manages persistent VMs.
type Manager struct {
	ctl    *fabric.Controller
	images *images.Store
	disks  *Disks
	log    *slog.Logger
}

// New returns the manager.
func New(ctl *fabric.Controller, imgs *images.Store, disks *Disks, log *slog.Logger) *Manager {
	return &Manager{ctl: ctl, images: imgs, disks: disks, log: log}
}

// Create makes the VM's disks (the OS disk a copy of the image's disk) and
// deploys its one instance. A refused VM leaves no disk behind.
func (m *Manager) Create(ctx context.Context, tenant string, req api.CreateVM) (api.VM, error) {
	if err := m.disks.Ready("persistent VMs"); err != nil {
		return api.VM{}, err
	}
	if _, err := m.ctl.Service(ctx, tenant, req.Name); err == nil {
		return api.VM{}, api.Errorf(api.CodeConflict, "name: a VM or service named %s exists", req.Name)
	}
	if req.Network != "" {
		// Refused on a network the tenant does not have, or that is
		// full, before anything is made; Deploy checks again.
		probe := api.ServiceSpec{Name: req.Name, Roles: []api.RoleSpec{{Name: api.VMRole, Runtime: api.RuntimeVM, Persistence: api.Persistent, Network: req.Network}}}
		if err := m.ctl.CheckNetworks(tenant, probe); err != nil {
			return api.VM{}, vmNetworkError(err)
		}
	}
	img, err := m.images.Get(tenant, req.Image)
	if err != nil {
		return api.VM{}, api.Errorf(api.CodeInvalid, "image: no image named %s (weft image list)", req.Image)
	}
	if img.Type != api.ImageVM {
		return api.VM{}, api.Errorf(api.CodeInvalid, "image: %s is a %s image, not a vm image", req.Image, img.Type)
	}
	if img.VM.DiskFormat != "raw" {
		return api.VM{}, api.Errorf(api.CodeInvalid, "image: %s has a %s disk; persistent VMs are made from raw disks (qemu-img convert -O raw)", req.Image, img.VM.DiskFormat)
	}
	if req.Network != "" {
		if err := joinsNetworks(img); err != nil {
			return api.VM{}, err
		}
	}
	spec, err := m.spec(tenant, req, img)
	if err != nil {
		return api.VM{}, err
	}
	spec.SetDefaults()
	if err := spec.Validate(); err != nil {
		return api.VM{}, err
	}
	role := &spec.Roles[0]
	if err := m.fits(ctx, role.Size); err != nil {
		return api.VM{}, err
	}
	// Refused over quota before any disk is made; Deploy checks again.
	if err := m.ctl.CheckQuota(tenant, api.ServiceSpec{}, spec); err != nil {
		return api.VM{}, err
	}
	if err := m.makeDisks(ctx, role.Disks, img); err != nil {
		return api.VM{}, err
	}
	if _, err := m.ctl.Deploy(ctx, tenant, spec); err != nil {
		m.deleteDisks(context.WithoutCancel(ctx), role.Disks)
		return api.VM{}, err
	}
	return m.Get(ctx, tenant, req.Name)
}

// fits refuses a size no node with the vm runtime could ever hold. With no
// such node yet, the VM waits, pending, for one to join.
func (m *Manager) fits(ctx context.Context, size api.Size) error {
	var most api.Resources
	found := false
	for _, n := range m.ctl.Nodes(ctx) {
		if !slices.Contains(n.Runtimes, api.RuntimeVM) {
			continue
		}
		found = true
		most.CPU = max(most.CPU, n.Capacity.CPU)
		most.Memory = max(most.Memory, n.Capacity.Memory)
	}
	switch {
	case !found:
		return nil
	case size.Memory > most.Memory:
		return api.Errorf(api.CodeInvalid, "memory: %s is more than any node has (the largest has %s)", size.Memory, most.Memory)
	case size.CPU > most.CPU:
		return api.Errorf(api.CodeInvalid, "cpus: %g is more than any node has (the largest has %g)", size.CPU, most.CPU)
	}
	return nil
}

// spec turns a request into the VM's service model.
func (m *Manager) spec(tenant string, req api.CreateVM, img api.Image) (api.ServiceSpec, error) {
	if req.CPUs == 0 {
		req.CPUs = DefaultCPUs
	}
	if req.Memory == 0 {
		req.Memory = DefaultMemory
	}
	if req.Disk == 0 {
		req.Disk = api.Bytes(img.VM.DiskSize)
	}
	if int64(req.Disk) < img.VM.DiskSize {
		return api.ServiceSpec{}, api.Errorf(api.CodeInvalid, "disk: %s is smaller than image %s's disk (%s)", req.Disk, img.Name, api.Bytes(img.VM.DiskSize))
	}
	if req.CPUs < 0 || req.Memory < 0 {
		return api.ServiceSpec{}, api.Errorf(api.CodeInvalid, "cpus and memory must be positive")
	}
	suffix := randomSuffix()
	disks := []api.DiskSpec{m.disks.newDisk(tenant, req.Name, suffix, "os", req.Disk)}
	for i, size := range req.DataDisks {
		if size <= 0 {
			return api.ServiceSpec{}, api.Errorf(api.CodeInvalid, "dataDisks[%d]: the size must be positive", i)
		}
		name := fmt.Sprintf("data%d", i+1)
		disks = append(disks, m.disks.newDisk(tenant, req.Name, suffix, name, size))
	}
	role := api.RoleSpec{
		Name: api.VMRole, Kind: api.KindVM, Runtime: api.RuntimeVM, Image: req.Image, Instances: 1,
		Size: api.Size{CPU: req.CPUs, Memory: req.Memory}, Persistence: api.Persistent, Disks: disks,
		Network: req.Network,
	}
	for _, p := range req.Ports {
		role.Endpoints = append(role.Endpoints, api.Endpoint{Name: p.Name, Protocol: api.ProtocolTCP, Port: p.PublicPort, GuestPort: p.GuestPort})
	}
	return api.ServiceSpec{Name: req.Name, UpgradeDomains: 1, Roles: []api.RoleSpec{role}}, nil
}

// joinsNetworks refuses an image whose VMs cannot take their private
// address: the node passes it on the kernel command line, for the guest
// agent to apply (docs/networks.md).
func joinsNetworks(img api.Image) error {
	if !slices.ContainsFunc(img.Files, func(f api.ImageFile) bool { return f.Name == api.ImageFileKernel }) {
		return api.Errorf(api.CodeInvalid, "network: image %s boots through its own bootloader, and only images with a kernel and Weft's guest agent (weft image build) join virtual networks", img.Name)
	}
	if !img.VM.GuestAgent {
		return api.Errorf(api.CodeInvalid, "network: image %s has no guest agent to configure the VM's private address; only images with Weft's guest agent (weft image build) join virtual networks", img.Name)
	}
	return nil
}

// vmNetworkError names the request's field in the fabric's error about the
// role's network.
func vmNetworkError(err error) error {
	var e *api.Error
	if errors.As(err, &e) && strings.HasPrefix(e.Message, "roles[0].network: ") {
		return api.Errorf(e.Code, "network: %s", strings.TrimPrefix(e.Message, "roles[0].network: "))
	}
	return err
}

func randomSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// makeDisks creates the page blobs: the OS disk from the image's disk.
func (m *Manager) makeDisks(ctx context.Context, disks []api.DiskSpec, img api.Image) error {
	var imageDisk api.ImageFile
	for _, f := range img.Files {
		if f.Name == api.ImageFileDisk {
			imageDisk = f
		}
	}
	for i, d := range disks {
		var err error
		if i == 0 {
			var resp *http.Response
			resp, err = m.images.OpenFile(ctx, imageDisk.Digest, "")
			if err == nil {
				err = m.disks.Make(ctx, d, resp.Body)
				resp.Body.Close()
			}
		} else {
			err = m.disks.Make(ctx, d, nil)
		}
		if err != nil {
			m.deleteDisks(context.WithoutCancel(ctx), disks[:i+1])
			return fmt.Errorf("vms: make disk %s: %w", d.Name, err)
		}
	}
	return nil
}

// deleteDisks breaks each disk's lease (a node may still hold it) and
// deletes it.
func (m *Manager) deleteDisks(ctx context.Context, disks []api.DiskSpec) {
	for _, d := range disks {
		if err := m.disks.Delete(ctx, d); err != nil {
			m.log.Warn("disk not deleted", "disk", d.Blob, "err", err)
		}
	}
}

// vmRole returns the VM's role if svc is a persistent VM.
func vmRole(svc api.Service) (api.RoleSpec, bool) {
	if !svc.Spec.IsVM() {
		return api.RoleSpec{}, false
	}
	return svc.Spec.Roles[0], true
}

// Get returns one of a tenant's VMs.
func (m *Manager) Get(ctx context.Context, tenant, name string) (api.VM, error) {
	svc, err := m.ctl.Service(ctx, tenant, name)
	if err != nil {
		return api.VM{}, api.Errorf(api.CodeNotFound, "no VM named %s", name)
	}
	if _, ok := vmRole(svc); !ok {
		return api.VM{}, api.Errorf(api.CodeNotFound, "%s is a service, not a VM", name)
	}
	return m.view(ctx, svc), nil
}

// List returns a tenant's VMs (every tenant's with api.AllTenants).
func (m *Manager) List(ctx context.Context, tenant string) []api.VM {
	out := []api.VM{}
	for _, svc := range m.ctl.Services(ctx, tenant) {
		if _, ok := vmRole(svc); ok {
			out = append(out, m.view(ctx, svc))
		}
	}
	return out
}

func (m *Manager) view(ctx context.Context, svc api.Service) api.VM {
	r, _ := vmRole(svc)
	vm := api.VM{
		Name: svc.Name, Tenant: svc.Tenant, Image: r.Image, CPUs: r.Size.CPU, Memory: r.Size.Memory, Disks: r.Disks,
		Running: r.Instances > 0, State: api.StateStopped, Health: api.HealthUnknown, CreatedAt: svc.CreatedAt,
	}
	for _, ep := range r.Endpoints {
		vm.Ports = append(vm.Ports, api.VMPort{Name: ep.Name, GuestPort: ep.GuestPort, PublicPort: ep.Port})
	}
	if r.Network != "" {
		// The slot's, which the VM keeps while stopped too.
		vm.Network, vm.PrivateAddress = r.Network, m.ctl.SlotAddress(svc.Tenant, r.Network, svc.Name, r.Name, 0)
	}
	var statuses []api.ExtensionStatus
	for _, in := range m.ctl.Instances(ctx, svc.Tenant, svc.Name) {
		if in.Desired != api.DesiredRunning {
			continue
		}
		vm.State, vm.Health, vm.Node, vm.Instance, vm.Address = in.State, in.Health, in.Node, in.ID, in.Address
		vm.Migration, vm.LastMigration = in.Migration, in.LastMigration
		statuses = in.Extensions
	}
	vm.Extensions = extensionsOf(r.Extensions, statuses)
	return vm
}

// Migrate moves the running VM to another node (to, or the fabric's
// choice) by live migration: its guest keeps running.
func (m *Manager) Migrate(ctx context.Context, tenant, name, to string) (api.VM, error) {
	vm, err := m.Get(ctx, tenant, name)
	if err != nil {
		return api.VM{}, err
	}
	if vm.Instance == "" {
		return api.VM{}, api.Errorf(api.CodeConflict, "VM %s is not running", name)
	}
	if _, err := m.ctl.Migrate(ctx, vm.Instance, to); err != nil {
		return api.VM{}, err
	}
	return m.Get(ctx, tenant, name)
}

// SetRunning starts (one instance) or stops (none) the VM; its disks stay.
func (m *Manager) SetRunning(ctx context.Context, tenant, name string, running bool) (api.VM, error) {
	if _, err := m.Get(ctx, tenant, name); err != nil {
		return api.VM{}, err
	}
	n := 0
	if running {
		n = 1
	}
	if _, err := m.ctl.Scale(ctx, tenant, name, api.VMRole, n); err != nil {
		return api.VM{}, err
	}
	return m.Get(ctx, tenant, name)
}

// Delete deletes the VM, then its disks once its instance has stopped (or
// after a minute: the disks' leases are broken first, which fences a node
// that still runs it).
func (m *Manager) Delete(ctx context.Context, tenant, name string) error {
	vm, err := m.Get(ctx, tenant, name)
	if err != nil {
		return err
	}
	if _, err := m.ctl.DeleteService(ctx, tenant, name, false); err != nil {
		return err
	}
	go func() {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if _, err := m.ctl.Service(context.Background(), tenant, name); err != nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		m.deleteDisks(context.Background(), vm.Disks)
	}()
	return nil
}
