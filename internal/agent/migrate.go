package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
)

// Live migration, the node's side (see fabric/migrate.go for the whole):
// an assignment marked Incoming makes this node the destination, which
// starts the instance waiting for the VM and reports where; an assignment
// whose migration has that address makes this node the source, which
// sends the VM and reports how it went.

// migratedAway is the watch outcome of an instance that now runs on
// another node.
const migratedAway = "migrated away"

// migrator returns the driver's live migration, or an error naming the
// runtime that has none.
func (in *instance) migrator() (driver.Migrator, error) {
	m, ok := in.drv.(driver.Migrator)
	if !ok {
		return nil, fmt.Errorf("the %s runtime cannot migrate instances", in.drv.Name())
	}
	return m, nil
}

// startIncoming starts the destination's copy and waits until the VM has
// arrived and runs here. A stop request (the controller gave up the
// migration) ends the wait.
func (in *instance) startIncoming(ctx context.Context, spec driver.Spec, migrationID string) (driver.Status, error) {
	mig, err := in.migrator()
	if err != nil {
		return driver.Status{}, err
	}
	port, err := freePort(in.a.cfg.Host)
	if err != nil {
		return driver.Status{}, fmt.Errorf("a port for the migration: %w", err)
	}
	listen := "tcp:" + net.JoinHostPort(in.a.cfg.Host, strconv.Itoa(port))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-in.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	if _, err := mig.StartIncoming(ctx, spec, listen); err != nil {
		return driver.Status{}, err
	}
	in.mu.Lock()
	in.incoming, in.migrationID = listen, migrationID
	in.mu.Unlock()
	in.set(api.StateStarting, api.HealthUnknown, "waiting for the VM to migrate here")
	in.a.changed()
	st, err := mig.FinishIncoming(ctx, in.id)
	in.mu.Lock()
	in.incoming = ""
	in.mu.Unlock()
	return st, err
}

// migrateOut sends the running VM to the destination the controller
// named, and records the outcome for the next heartbeat. It reports
// whether the instance left.
func (in *instance) migrateOut(ctx context.Context) bool {
	in.mu.Lock()
	m := in.asg.Instance.Migration
	in.mu.Unlock()
	if m == nil || m.URI == "" {
		return false
	}
	res := &api.MigrationResult{ID: m.ID}
	mig, err := in.migrator()
	if err == nil {
		var stats driver.MigrationStats
		stats, err = mig.MigrateTo(ctx, in.id, m.URI, 0)
		res.Total, res.Downtime = stats.Total, stats.Downtime
	}
	if err != nil {
		res.Error = err.Error()
		in.a.log.Warn("live migration failed", "instance", in.id, "to", m.To, "err", err)
	} else {
		in.a.log.Info("migrated", "instance", in.id, "to", m.To, "total", res.Total, "downtime", res.Downtime)
	}
	in.mu.Lock()
	in.migrated = res
	in.mu.Unlock()
	in.a.changed()
	return err == nil
}
