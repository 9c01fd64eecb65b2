// Package drives is the drive API on the controller (weft drive): a drive
// is a tenant's page blob in the storage service's system account (the
// same "disks" container as VM disks, through vms.Disks), recorded in the
// replicated state as drives/TENANT/NAME, counted against the tenant's
// disk quota like a VM's disks. Nodes mount it as ext4 (internal/drive).
package drives

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/vms"
)

// Quota is the part of the controller that counts a tenant's quota.
type Quota interface {
	CheckDiskQuota(tenant string, size api.Bytes) error
}

// QuotaFunc is a Quota of one function: the controller's CheckDiskQuota
// where the controller is made after the manager (it keeps slots' drives
// through the manager).
type QuotaFunc func(tenant string, size api.Bytes) error

// CheckDiskQuota calls f.
func (f QuotaFunc) CheckDiskQuota(tenant string, size api.Bytes) error { return f(tenant, size) }

// Manager makes, lists and deletes drives.
type Manager struct {
	st    state.Store
	quota Quota
	disks *vms.Disks
	log   *slog.Logger

	// mu serializes creates: the quota is checked, then the drive is made
	// and recorded, and two creates must not both fit in the room of one.
	mu sync.Mutex
}

// New returns the manager.
func New(st state.Store, quota Quota, disks *vms.Disks, log *slog.Logger) *Manager {
	return &Manager{st: st, quota: quota, disks: disks, log: log}
}

func key(tenant, name string) string { return tenant + "/" + name }

// record is a drive as the state keeps it: with the blob service whose
// storage holds it (api.DiskSpec.Endpoint), which is the servers' to
// know, not the tenant's.
type record struct {
	api.Drive
	Endpoint string `json:"endpoint,omitempty"`
}

// disk is the drive's page blob.
func (r record) disk() api.DiskSpec {
	return api.DiskSpec{Name: r.Name, Size: r.Size, Blob: r.Blob, Endpoint: r.Endpoint}
}

// Create makes a drive: an empty page blob, or a copy of a snapshot of
// another of the tenant's drives. A drive refused (name taken, over
// quota, no such snapshot) leaves no blob behind.
func (m *Manager) Create(ctx context.Context, tenant string, req api.CreateDrive) (api.Drive, error) {
	return m.create(ctx, tenant, req, nil)
}

func (m *Manager) create(ctx context.Context, tenant string, req api.CreateDrive, slot *api.DriveSlot) (api.Drive, error) {
	if err := m.disks.Ready("drives"); err != nil {
		return api.Drive{}, err
	}
	if err := api.ValidateDriveName(req.Name); err != nil {
		return api.Drive{}, err
	}
	var src record
	var snap string
	if req.FromSnapshot != "" {
		from, at, err := api.ParseSnapshotID(req.FromSnapshot)
		if err != nil {
			return api.Drive{}, err
		}
		if src, _, err = m.get(tenant, from); err != nil {
			return api.Drive{}, api.Errorf(api.CodeInvalid, "fromSnapshot: no drive named %s", from)
		}
		if !slices.ContainsFunc(src.Snapshots, func(s api.DriveSnapshot) bool { return s.ID == req.FromSnapshot }) {
			return api.Drive{}, api.Errorf(api.CodeInvalid, "fromSnapshot: drive %s has no snapshot %s (weft drive show %s)", from, at, from)
		}
		if req.Size == 0 {
			req.Size = src.Size
		}
		if req.Size != src.Size {
			return api.Drive{}, api.Errorf(api.CodeInvalid, "size: a drive made from a snapshot has the snapshot's size (%s), not %s", src.Size, req.Size)
		}
		snap = at
	}
	if req.Size < api.MinDriveSize {
		return api.Drive{}, api.Errorf(api.CodeInvalid, "size: a drive needs at least %s, not %s", api.Bytes(api.MinDriveSize), req.Size)
	}
	if req.Size%blobclient.PageSize != 0 {
		return api.Drive{}, api.Errorf(api.CodeInvalid, "size: %d bytes is not a whole number of %d-byte pages", int64(req.Size), blobclient.PageSize)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.st.Get(state.KindDrives, key(tenant, req.Name)); ok {
		return api.Drive{}, api.Errorf(api.CodeConflict, "name: a drive named %s exists", req.Name)
	}
	if err := m.quota.CheckDiskQuota(tenant, req.Size); err != nil {
		return api.Drive{}, err
	}
	// A new blob name each time: the blob of a drive deleted under the
	// same name may still be on its way out.
	disk := m.disks.Spec("drive-"+tenant+"-"+req.Name+"-"+randomSuffix(), req.Name, req.Size)
	var err error
	if snap != "" {
		disk.Endpoint = src.Endpoint // copies stay on the storage holding the snapshot
		err = m.disks.Copy(ctx, disk, src.disk(), snap)
	} else {
		err = m.disks.Make(ctx, disk, nil)
	}
	if err != nil {
		if !errors.Is(err, blobclient.ErrExists) { // not ours to delete then
			m.deleteBlob(disk)
		}
		return api.Drive{}, fmt.Errorf("drives: make %s: %w", req.Name, err)
	}
	d := record{Drive: api.Drive{
		Name: req.Name, Tenant: tenant, Size: req.Size, Blob: disk.Blob, From: req.FromSnapshot, Slot: slot, CreatedAt: time.Now().UTC(),
	}, Endpoint: disk.Endpoint}
	data, _ := json.Marshal(d)
	_, err = m.st.Apply(ctx, []state.Op{
		{Kind: state.KindDrives, Key: key(tenant, d.Name), Check: true, Rev: 0},
		{Kind: state.KindDrives, Key: key(tenant, d.Name), Value: data},
	})
	if err != nil {
		m.deleteBlob(disk)
		if errors.Is(err, state.ErrConflict) {
			return api.Drive{}, api.Errorf(api.CodeConflict, "name: a drive named %s exists", req.Name)
		}
		return api.Drive{}, fmt.Errorf("drives: record %s: %w", req.Name, err)
	}
	return d.Drive, nil
}

func (m *Manager) deleteBlob(disk api.DiskSpec) {
	if err := m.disks.Delete(context.Background(), disk); err != nil {
		m.log.Warn("drive blob not deleted", "blob", disk.Blob, "err", err)
	}
}

func randomSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Get returns one of a tenant's drives.
func (m *Manager) Get(tenant, name string) (api.Drive, error) {
	d, _, err := m.get(tenant, name)
	return d.Drive, err
}

func (m *Manager) get(tenant, name string) (record, uint64, error) {
	e, ok := m.st.Get(state.KindDrives, key(tenant, name))
	if !ok {
		return record{}, 0, api.Errorf(api.CodeNotFound, "no drive named %s", name)
	}
	var d record
	if err := json.Unmarshal(e.Value, &d); err != nil {
		return record{}, 0, fmt.Errorf("drives: decode %s: %w", name, err)
	}
	return d, e.Rev, nil
}

// List returns a tenant's drives (every tenant's with api.AllTenants), by
// tenant and name.
func (m *Manager) List(tenant string) []api.Drive {
	prefix := tenant + "/"
	if tenant == api.AllTenants {
		prefix = ""
	}
	out := []api.Drive{}
	for _, e := range m.st.List(state.KindDrives, prefix) {
		var d record
		if json.Unmarshal(e.Value, &d) == nil {
			out = append(out, d.Drive)
		}
	}
	return out
}

// Snapshot takes a snapshot of the drive as the storage holds it now:
// what its node's applications synced (a write not yet synced may or may
// not be in it, as after a power cut).
func (m *Manager) Snapshot(ctx context.Context, tenant, name string) (api.DriveSnapshot, error) {
	d, rev, err := m.get(tenant, name)
	if err != nil {
		return api.DriveSnapshot{}, err
	}
	at, err := m.disks.Snapshot(ctx, d.disk())
	if err != nil {
		return api.DriveSnapshot{}, fmt.Errorf("drives: snapshot %s: %w", name, err)
	}
	created, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return api.DriveSnapshot{}, fmt.Errorf("drives: snapshot %s: the storage named it %q, not a time", name, at)
	}
	snap := api.DriveSnapshot{ID: name + "@" + at, CreatedAt: created}
	// Recorded with a check of the drive's revision: a drive deleted (or
	// snapshotted) meanwhile is read again.
	for {
		d.Snapshots = append(d.Snapshots, snap)
		data, _ := json.Marshal(d)
		_, err := m.st.Apply(ctx, []state.Op{
			{Kind: state.KindDrives, Key: key(tenant, name), Check: true, Rev: rev},
			{Kind: state.KindDrives, Key: key(tenant, name), Value: data},
		})
		if !errors.Is(err, state.ErrConflict) {
			if err != nil {
				return api.DriveSnapshot{}, fmt.Errorf("drives: record the snapshot of %s: %w", name, err)
			}
			return snap, nil
		}
		if d, rev, err = m.get(tenant, name); err != nil {
			return api.DriveSnapshot{}, err // deleted meanwhile, with its snapshots
		}
	}
}

// Delete deletes the drive's record, then its blob with its snapshots
// (breaking its lease first, which fences a node still writing it).
func (m *Manager) Delete(ctx context.Context, tenant, name string) error {
	d, rev, err := m.get(tenant, name)
	if err != nil {
		return err
	}
	ops := []state.Op{
		{Kind: state.KindDrives, Key: key(tenant, name), Check: true, Rev: rev},
		{Kind: state.KindDrives, Key: key(tenant, name), Delete: true},
	}
	if d.Slot != nil {
		// A slot's drive goes with its service: while the service
		// exists, its slot may run on it or come back to it.
		ops = append(ops, state.Op{Kind: state.KindServices, Key: key(tenant, d.Slot.Service), Check: true})
	}
	_, err = m.st.Apply(ctx, ops)
	if errors.Is(err, state.ErrConflict) {
		if d.Slot != nil {
			if _, exists := m.st.Get(state.KindServices, key(tenant, d.Slot.Service)); exists {
				return api.Errorf(api.CodeConflict, "drive %s is slot %d's of role %s of service %s, which exists: it is deleted with the service (weft service delete %s; --keep-drives keeps it, to delete alone later)",
					name, d.Slot.Slot, d.Slot.Role, d.Slot.Service, d.Slot.Service)
			}
		}
		return api.Errorf(api.CodeConflict, "drive %s changed meanwhile (a snapshot?): try again", name)
	}
	if err != nil {
		return fmt.Errorf("drives: delete %s: %w", name, err)
	}
	if err := m.disks.Delete(ctx, d.disk()); err != nil {
		m.log.Warn("drive blob not deleted", "drive", name, "blob", d.Blob, "err", err)
	}
	return nil
}

// EnsureSlot makes the drive of an instance slot (api.SlotDriveName) unless
// it exists, and says whether it made it: a slot scaled away and back, or
// a service deployed again, finds the drive it had. An existing drive
// keeps its size.
func (m *Manager) EnsureSlot(ctx context.Context, tenant string, slot api.DriveSlot, size api.Bytes) (bool, error) {
	name := api.SlotDriveName(slot.Service, slot.Role, slot.Slot, slot.Drive)
	if _, ok := m.st.Get(state.KindDrives, key(tenant, name)); ok {
		return false, nil
	}
	_, err := m.create(ctx, tenant, api.CreateDrive{Name: name, Size: size}, &slot)
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Code == api.CodeConflict {
		return false, nil // made meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return true, nil
}

// Access grants a node access to one of a tenant's drives.
func (m *Manager) Access(tenant, name string) (api.DiskAccess, error) {
	d, _, err := m.get(tenant, name)
	if err != nil {
		return api.DiskAccess{}, err
	}
	return m.disks.Access(d.disk())
}

// DeleteService deletes the drives made for the slots of a tenant's
// service, once the service is gone.
func (m *Manager) DeleteService(ctx context.Context, tenant, service string) error {
	var errs []error
	for _, d := range m.List(tenant) {
		if d.Slot != nil && d.Slot.Service == service {
			if err := m.Delete(ctx, tenant, d.Name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
