package qmp

import (
	"context"
	"errors"
	"time"
)

// Status is the VM's run state (query-status).
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"` // "running", "paused", "prelaunch", "inmigrate", "postmigrate", "shutdown", ...
}

// QueryStatus returns the VM's run state.
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var st Status
	err := c.Execute(ctx, "query-status", nil, &st)
	return st, err
}

// Stop pauses the VM's CPUs (QEMU emits STOP).
func (c *Client) Stop(ctx context.Context) error { return c.Execute(ctx, "stop", nil, nil) }

// Cont resumes the VM's CPUs (QEMU emits RESUME), also the first time
// when QEMU was started with -S.
func (c *Client) Cont(ctx context.Context) error { return c.Execute(ctx, "cont", nil, nil) }

// SystemPowerdown presses the virtual power button (an ACPI shutdown
// request, which the guest may ignore).
func (c *Client) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit at once, as if the VM's power cord were pulled. QEMU
// closes the connection right after its reply, so losing the connection
// counts as success.
func (c *Client) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// Migrate starts an outgoing live migration to uri ("tcp:HOST:PORT",
// "unix:PATH", "exec:CMD", "file:..." from QEMU 8). It returns once the
// migration has started; poll QueryMigrate, or watch MIGRATION events after
// enabling the "events" capability, for its end.
func (c *Client) Migrate(ctx context.Context, uri string) error {
	return c.Execute(ctx, "migrate", map[string]any{"uri": uri}, nil)
}

// MigrateIncoming makes a QEMU started with `-incoming defer` listen for
// the incoming migration on uri ("tcp:0.0.0.0:PORT", "unix:PATH"). It
// returns once QEMU listens. The VM runs (status "running") once the
// migration completes, unless the source was paused.
func (c *Client) MigrateIncoming(ctx context.Context, uri string) error {
	return c.Execute(ctx, "migrate-incoming", map[string]any{"uri": uri}, nil)
}

// MigrateCancel cancels the outgoing migration in progress; the source VM
// keeps running.
func (c *Client) MigrateCancel(ctx context.Context) error {
	return c.Execute(ctx, "migrate_cancel", nil, nil)
}

// Migration statuses (MigrationInfo.Status, and the MIGRATION event's status).
const (
	MigrationNone      = "none"
	MigrationSetup     = "setup"
	MigrationActive    = "active"
	MigrationDevice    = "device"
	MigrationCompleted = "completed"
	MigrationFailed    = "failed"
	MigrationCancelled = "cancelled"
)

// MigrationInfo is the state of the current or last migration
// (query-migrate). Times are QEMU's, in milliseconds; use the methods for
// durations.
type MigrationInfo struct {
	Status string `json:"status"` // empty (or "none") when no migration ever ran
	// TotalTimeMillis is the migration's duration so far, or in all once completed.
	TotalTimeMillis int64 `json:"total-time,omitempty"`
	// DowntimeMillis is how long the VM was paused for the final copy, once completed.
	DowntimeMillis int64 `json:"downtime,omitempty"`
	// ExpectedDowntimeMillis is QEMU's estimate while active.
	ExpectedDowntimeMillis int64         `json:"expected-downtime,omitempty"`
	SetupTimeMillis        int64         `json:"setup-time,omitempty"`
	RAM                    *MigrationRAM `json:"ram,omitempty"`
	ErrorDesc              string        `json:"error-desc,omitempty"` // why it failed
}

// MigrationRAM is the RAM part of MigrationInfo, in bytes and pages.
type MigrationRAM struct {
	Transferred    int64   `json:"transferred"` // bytes sent
	Remaining      int64   `json:"remaining"`   // bytes still to send
	Total          int64   `json:"total"`       // the guest's RAM size
	Duplicate      int64   `json:"duplicate"`   // pages sent as "all the same byte"
	Normal         int64   `json:"normal"`      // pages sent in full
	NormalBytes    int64   `json:"normal-bytes"`
	DirtyPagesRate int64   `json:"dirty-pages-rate"`
	DirtySyncCount int64   `json:"dirty-sync-count"` // passes over memory
	Mbps           float64 `json:"mbps"`
	PageSize       int64   `json:"page-size"`
}

// TotalTime is the migration's duration.
func (m MigrationInfo) TotalTime() time.Duration {
	return time.Duration(m.TotalTimeMillis) * time.Millisecond
}

// Downtime is how long the VM was paused.
func (m MigrationInfo) Downtime() time.Duration {
	return time.Duration(m.DowntimeMillis) * time.Millisecond
}

// Done reports whether the migration has ended, one way or another.
func (m MigrationInfo) Done() bool {
	switch m.Status {
	case MigrationCompleted, MigrationFailed, MigrationCancelled:
		return true
	}
	return false
}

// QueryMigrate returns the state of the current or last migration.
func (c *Client) QueryMigrate(ctx context.Context) (MigrationInfo, error) {
	var mi MigrationInfo
	err := c.Execute(ctx, "query-migrate", nil, &mi)
	return mi, err
}

// MigrationParameters are the tunables of migrate-set-parameters; zero
// fields are left as they are.
type MigrationParameters struct {
	// DowntimeLimit is the longest the VM may be paused for the final copy;
	// QEMU keeps iterating until it estimates it can finish within it.
	DowntimeLimit time.Duration
	// MaxBandwidth caps the migration stream, in bytes per second.
	MaxBandwidth int64
}

// SetMigrationParameters sets migration tunables for the next migration.
func (c *Client) SetMigrationParameters(ctx context.Context, p MigrationParameters) error {
	args := map[string]any{}
	if p.DowntimeLimit > 0 {
		ms := p.DowntimeLimit.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		args["downtime-limit"] = ms
	}
	if p.MaxBandwidth > 0 {
		args["max-bandwidth"] = p.MaxBandwidth
	}
	if len(args) == 0 {
		return nil
	}
	return c.Execute(ctx, "migrate-set-parameters", args, nil)
}

// SetMigrationCapabilities turns migration capabilities on or off, by
// name: "events" (MIGRATION and MIGRATION_PASS events), "xbzrle",
// "auto-converge", "postcopy-ram", "zero-blocks", ...
func (c *Client) SetMigrationCapabilities(ctx context.Context, caps map[string]bool) error {
	type capability struct {
		Capability string `json:"capability"`
		State      bool   `json:"state"`
	}
	list := make([]capability, 0, len(caps))
	for name, on := range caps {
		list = append(list, capability{name, on})
	}
	return c.Execute(ctx, "migrate-set-capabilities", map[string]any{"capabilities": list}, nil)
}

// VirtQueue is one virtqueue as QEMU sees it: what the guest made
// available, what QEMU took and gave back, and the last index it told the
// guest about. Read it to tell a guest that stopped reading from a QEMU
// that stopped taking: for diagnostics only.
type VirtQueue struct {
	AvailIdx      int `json:"shadow-avail-idx"` // the guest's avail index when QEMU last read it
	LastAvailIdx  int `json:"last-avail-idx"`   // the next buffer QEMU takes
	UsedIdx       int `json:"used-idx"`         // buffers QEMU gave back
	SignalledUsed int `json:"signalled-used"`   // the used index of QEMU's last notification
	InUse         int `json:"inuse"`            // taken and not yet given back
	Size          int `json:"vring-num"`        // how many buffers the queue holds
}

// VirtioDevice is one virtio device of the machine (x-query-virtio).
type VirtioDevice struct {
	Path string `json:"path"` // its QOM path, for VirtQueue
	Name string `json:"name"` // "virtio-serial", "virtio-blk", ...
}

// VirtioDevices lists the machine's virtio devices (x-query-virtio: QEMU
// 7.2 and later, unstable, so for diagnostics only). A device's path is
// its id's (/machine/peripheral/ID) on a virtio-mmio machine, and that
// path's virtio-backend on PCI.
func (c *Client) VirtioDevices(ctx context.Context) ([]VirtioDevice, error) {
	var ds []VirtioDevice
	err := c.Execute(ctx, "x-query-virtio", nil, &ds)
	return ds, err
}

// VirtQueue returns the state of queue of the virtio device at QOM path
// (x-query-virtio-queue-status: QEMU 7.2 and later, and unstable, hence
// diagnostics only).
func (c *Client) VirtQueue(ctx context.Context, path string, queue int) (VirtQueue, error) {
	var q VirtQueue
	err := c.Execute(ctx, "x-query-virtio-queue-status", map[string]any{"path": path, "queue": queue}, &q)
	return q, err
}
