package qemu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/qmp"
	"github.com/weftcloud/weft/internal/shim"
)

var _ driver.Migrator = (*Driver)(nil)

// ReasonMigrated is the exit reason of an instance whose VM migrated away.
const ReasonMigrated = driver.ReasonMigrated

// MigrationStats describes a completed live migration.
type MigrationStats = driver.MigrationStats

// MigrateTo live-migrates the instance's VM to a destination waiting at
// uri ("tcp:HOST:PORT" or "unix:PATH", as given to the destination's
// StartIncoming), pausing it for at most about downtime (0: QEMU's default,
// 300 ms) at the end. An ephemeral VM's overlay disk goes along with its
// memory (the destination has the same image); a persistent VM's disks are
// shared through the storage service. On success the source QEMU exits and
// the instance reports exited with code 0, reason "migrated"; on failure,
// or when ctx ends first, the migration is cancelled and the VM keeps
// running here.
func (d *Driver) MigrateTo(ctx context.Context, id, uri string, downtime time.Duration) (MigrationStats, error) {
	in, err := d.lookup(id)
	if err != nil {
		return MigrationStats{}, err
	}
	if st, err := shim.Inspect(in.dir); err != nil || !st.Running {
		return MigrationStats{}, fmt.Errorf("qemu: migrate %s: not running", id)
	}
	// The guest does not answer while paused, nor after it left.
	in.stopWatching()
	var stats MigrationStats
	err = d.qmp(ctx, in, func(q *qmp.Client) error {
		blockMigration := in.st.Overlay != ""
		if err := q.SetMigrationCapabilities(ctx, map[string]bool{"block": blockMigration}); err != nil {
			return err
		}
		if blockMigration {
			// Only the overlay: the destination's has the same backing image.
			if err := q.Execute(ctx, "migrate-set-parameters", map[string]any{"block-incremental": true}, nil); err != nil {
				return err
			}
		}
		if err := q.SetMigrationParameters(ctx, qmp.MigrationParameters{DowntimeLimit: downtime}); err != nil {
			return err
		}
		if err := q.Migrate(ctx, uri); err != nil {
			return err
		}
		info, err := waitMigration(ctx, q)
		if err != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			q.MigrateCancel(cctx)
			return err
		}
		stats = MigrationStats{Total: info.TotalTime(), Downtime: info.Downtime()}
		if info.RAM != nil {
			stats.RAM = info.RAM.Transferred
		}
		// The VM runs at the destination now: this copy must never resume.
		d.record(in, exitRecord{Code: 0, Reason: ReasonMigrated})
		return q.Quit(ctx)
	})
	if err != nil {
		if st, ierr := shim.Inspect(in.dir); ierr == nil && st.Running {
			d.startWatching(in)
		}
		return MigrationStats{}, fmt.Errorf("qemu: migrate %s: %w", id, err)
	}
	in.closeAgent()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	shim.Wait(wctx, in.dir)
	d.log.Info("migrated", "instance", id, "to", uri, "total", stats.Total, "downtime", stats.Downtime)
	return stats, nil
}

// waitMigration polls the migration until it ends; it returns an error
// unless it completed.
func waitMigration(ctx context.Context, q *qmp.Client) (qmp.MigrationInfo, error) {
	for {
		info, err := q.QueryMigrate(ctx)
		if err != nil {
			return info, err
		}
		switch info.Status {
		case qmp.MigrationCompleted:
			return info, nil
		case qmp.MigrationFailed, qmp.MigrationCancelled:
			if info.ErrorDesc != "" {
				return info, fmt.Errorf("migration %s: %s", info.Status, info.ErrorDesc)
			}
			return info, fmt.Errorf("migration %s", info.Status)
		}
		select {
		case <-ctx.Done():
			return info, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StartIncoming starts QEMU for spec, as Start does, but waiting for a
// migration on listen ("tcp:0.0.0.0:PORT" or "unix:PATH"). It returns
// once QEMU listens; call FinishIncoming after the source's MigrateTo.
// The instance is not watched until then.
func (d *Driver) StartIncoming(ctx context.Context, spec driver.Spec, listen string) (driver.Status, error) {
	in, err := d.launch(ctx, spec, true)
	if err != nil {
		return driver.Status{}, fmt.Errorf("qemu: start %s for a migration: %w", spec.ID, err)
	}
	err = d.qmp(ctx, in, func(q *qmp.Client) error { return q.MigrateIncoming(ctx, listen) })
	if err != nil {
		d.kill(in)
		return driver.Status{}, fmt.Errorf("qemu: start %s for a migration: %w", spec.ID, err)
	}
	st, err := shim.Inspect(in.dir)
	if err != nil {
		return driver.Status{}, fmt.Errorf("qemu: start %s for a migration: %w", spec.ID, err)
	}
	return st, nil
}

// FinishIncoming waits for the incoming migration to complete and the VM
// to run, then reconnects to the guest agent, sets the guest's clock (it
// is behind by the migration's downtime) and watches the instance as
// Start does. When the migration failed, it kills the waiting QEMU and
// returns an error.
func (d *Driver) FinishIncoming(ctx context.Context, id string) (driver.Status, error) {
	in, err := d.lookup(id)
	if err != nil {
		return driver.Status{}, err
	}
	err = d.qmp(ctx, in, func(q *qmp.Client) error {
		if _, err := waitMigration(ctx, q); err != nil {
			return err
		}
		for {
			st, err := q.QueryStatus(ctx)
			if err != nil {
				return err
			}
			if st.Running {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the VM is %s after the migration: %w", st.Status, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	if err != nil {
		d.kill(in)
		return driver.Status{}, fmt.Errorf("qemu: finish the migration of %s: %w", id, err)
	}
	if in.st.GuestAgent {
		rctx, cancel := d.whileRunning(ctx, in.dir, d.cfg.ReadyTimeout)
		defer cancel()
		c, err := d.agent(rctx, in)
		if err == nil {
			err = c.SetTime(rctx, time.Now())
		}
		if err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() == nil {
				err = context.Cause(rctx)
			}
			return driver.Status{}, fmt.Errorf("qemu: finish the migration of %s: %w", id, err)
		}
	}
	d.startWatching(in)
	st, err := shim.Inspect(in.dir)
	return d.explain(in.dir, st), err
}
