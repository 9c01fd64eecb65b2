// Package metering records what each tenant used, from what the fabric
// actually ran, and turns it into bills.
//
// The Meter runs on the leading server only. Every interval it samples the
// fabric's footprint (the instances whose state is running, the persistent
// VMs' disks) and, in one state batch, adds the time since its cursor to
// hourly usage buckets (kind state.KindUsage) and moves the cursor (kind
// state.KindMetering, key "cursor") to now. The batch checks the cursor's
// revision and every bucket's, so of two meters that read the same cursor
// (an old leader not yet aware it lost, and the new one) only one counts
// the interval: the other's batch fails with state.ErrConflict and changes
// nothing. A new leader carries on from the cursor, so an interval is
// counted once whoever counts it.
//
// Sampling: an instance running when a step samples is counted for the
// whole step (at most Interval, 60s by default); one that stopped before
// the sample is not. A start or a stop is thus off by less than one
// interval, and the errors do not accumulate. Usage is per tenant, service,
// meter and dimension, never per instance or node, so an instance that
// moves (a replacement on another node, a live migration) carries on
// being counted as its service's usage.
//
// The Ledger reads the buckets back (usage queries, bills) and keeps the
// operator's rate card.
package metering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/state"
)

// Keys of state.KindMetering.
const (
	cursorKey   = "cursor"
	rateCardKey = "ratecard"
)

// Defaults of Config.
const (
	DefaultInterval  = time.Minute
	DefaultMaxStep   = 15 * time.Minute
	DefaultRetention = 100 * 24 * time.Hour
	// pruneBatch bounds the deletes one step adds, so a first prune of a
	// long history does not make one huge batch.
	pruneBatch = 1000
)

// Config configures a Meter; zero values take the defaults.
type Config struct {
	Store state.Store
	// Footprint is what runs now (fabric.Controller.Footprint).
	Footprint func() fabric.Footprint
	// Interval is the time between steps (default one minute).
	Interval time.Duration
	// MaxStep is the most one step counts. A cursor older than that (the
	// controllers were all down, or no leader for a long time) is counted
	// for MaxStep only, with what runs now; the rest is not counted but
	// added to the cursor's Skipped and logged, because the state cannot
	// say what ran while nobody watched, and billing today's footprint for
	// hours nobody saw would charge guesses. Default 15 minutes.
	MaxStep time.Duration
	// Retention is how long usage buckets are kept (default 100 days: the
	// current and the two previous months can always be billed).
	Retention time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
}

// Meter counts usage into the store; see the package comment.
type Meter struct {
	cfg Config
	log *slog.Logger
}

// New returns a meter; Run starts it.
func New(cfg Config) *Meter {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxStep <= 0 {
		cfg.MaxStep = DefaultMaxStep
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Meter{cfg: cfg, log: cfg.Logger}
}

// Cursor is where metering stands: everything before At is counted.
type Cursor struct {
	At time.Time `json:"at"`
	// Skipped is the seconds never counted because a step found the
	// cursor older than MaxStep (see Config.MaxStep), over all time.
	Skipped float64 `json:"skipped,omitempty"`
}

// Run steps every interval, the first time at once, until ctx ends; it
// then returns ctx's error. Only the leader runs it.
func (m *Meter) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		err := m.Step(ctx)
		switch {
		case errors.Is(err, state.ErrConflict):
			m.log.Info("metering: another meter counted this interval", "err", err)
		case err != nil && ctx.Err() == nil:
			m.log.Error("metering step failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Step counts from the cursor to now in one batch. It returns
// state.ErrConflict, having counted nothing, when another meter moved the
// cursor (or a bucket) since this one read it.
func (m *Meter) Step(ctx context.Context) error {
	ops, err := m.plan(m.cfg.Now())
	if err != nil || len(ops) == 0 {
		return err
	}
	if _, err := m.cfg.Store.Apply(ctx, ops); err != nil {
		return fmt.Errorf("metering: step: %w", err)
	}
	return nil
}

// plan is the batch of one step at now: nil when there is nothing to count.
func (m *Meter) plan(now time.Time) ([]state.Op, error) {
	now = now.UTC()
	e, exists := m.cfg.Store.Get(state.KindMetering, cursorKey)
	if !exists {
		// The first step ever starts counting now: nothing says what ran before.
		return []state.Op{
			{Kind: state.KindMetering, Key: cursorKey, Check: true, Rev: 0},
			putJSON(state.KindMetering, cursorKey, Cursor{At: now}),
		}, nil
	}
	var cur Cursor
	if err := json.Unmarshal(e.Value, &cur); err != nil {
		return nil, fmt.Errorf("metering: read cursor: %w", err)
	}
	if !now.After(cur.At) {
		return nil, nil
	}
	from := cur.At
	if gap := now.Sub(from); gap > m.cfg.MaxStep {
		from = now.Add(-m.cfg.MaxStep)
		cur.Skipped += (gap - m.cfg.MaxStep).Seconds()
		m.log.Warn("metering: cursor older than the longest step; counting only its end",
			"cursor", cur.At, "skipped", gap-m.cfg.MaxStep)
	}
	prevHour := cur.At.Truncate(time.Hour)
	cur.At = now
	ops := []state.Op{
		{Kind: state.KindMetering, Key: cursorKey, Check: true, Rev: e.Rev},
		putJSON(state.KindMetering, cursorKey, cur),
	}
	usage := count(m.cfg.Footprint(), from, now)
	ops = append(ops, m.reportOps(from, now, usage)...)
	ops = append(ops, m.addOps(usage)...)
	if now.Truncate(time.Hour).After(prevHour) {
		ops = append(ops, m.pruneOps(now)...)
	}
	return ops, nil
}

// count is the usage of footprint fp over [from, to), split at hours.
func count(fp fabric.Footprint, from, to time.Time) map[string]*api.UsageRecord {
	out := map[string]*api.UsageRecord{}
	add := func(tenant, service string, hour time.Time, meter, dim string, q float64) {
		addUsage(out, tenant, service, hour, meter, dim, q)
	}
	eachHour(from, to, func(hour time.Time, secs float64) {
		for _, in := range fp.Running {
			size := api.SizeDimension(in.Size)
			if in.VM {
				add(in.Tenant, in.Service, hour, api.MeterVMSeconds, size, secs)
			} else {
				add(in.Tenant, in.Service, hour, api.MeterInstanceSeconds, in.Runtime+"/"+size, secs)
			}
		}
		for _, d := range fp.Disks {
			add(d.Tenant, d.Service, hour, api.MeterDiskGiBHours, "", float64(d.Size)/(1<<30)*secs/3600)
		}
	})
	return out
}

// eachHour calls fn with each hour [from, to) overlaps and the seconds
// of the overlap.
func eachHour(from, to time.Time, fn func(hour time.Time, secs float64)) {
	for a := from; a.Before(to); {
		hour := a.Truncate(time.Hour)
		b := hour.Add(time.Hour)
		if b.After(to) {
			b = to
		}
		fn(hour, b.Sub(a).Seconds())
		a = b
	}
}

// addUsage adds q to the bucket of usage it belongs to.
func addUsage(usage map[string]*api.UsageRecord, tenant, service string, hour time.Time, meter, dim string, q float64) {
	k := bucketKey(tenant, hour, meter, dim, service)
	r := usage[k]
	if r == nil {
		r = &api.UsageRecord{Tenant: tenant, Service: service, Hour: hour, Meter: meter,
			Dimension: dim, Unit: api.MeterUnits[meter]}
		usage[k] = r
	}
	r.Quantity += q
}

// addOps adds the counted usage to the stored buckets, each put checked
// against the revision it was read at.
func (m *Meter) addOps(usage map[string]*api.UsageRecord) []state.Op {
	keys := make([]string, 0, len(usage))
	for k := range usage {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ops := make([]state.Op, 0, 2*len(keys))
	for _, k := range keys {
		r := *usage[k]
		var rev uint64
		if e, ok := m.cfg.Store.Get(state.KindUsage, k); ok {
			var old api.UsageRecord
			if err := json.Unmarshal(e.Value, &old); err == nil {
				r.Quantity += old.Quantity
			} else {
				m.log.Error("metering: unreadable usage record replaced", "key", k, "err", err)
			}
			rev = e.Rev
		}
		ops = append(ops, state.Op{Kind: state.KindUsage, Key: k, Check: true, Rev: rev}, putJSON(state.KindUsage, k, r))
	}
	return ops
}

// pruneOps deletes up to pruneBatch buckets older than the retention. It
// runs once an hour (when a step crosses an hour), which keeps the store
// at about Retention's worth of hours.
func (m *Meter) pruneOps(now time.Time) []state.Op {
	limit := now.Add(-m.cfg.Retention).Truncate(time.Hour).Format(hourLayout)
	var ops []state.Op
	for _, e := range m.cfg.Store.List(state.KindUsage, "") {
		if _, hour, ok := splitKey(e.Key); ok && hour < limit {
			ops = append(ops, state.Op{Kind: state.KindUsage, Key: e.Key, Delete: true})
			if len(ops) == pruneBatch {
				break
			}
		}
	}
	return ops
}

// hourLayout is the hour in bucket keys; it sorts as time does.
const hourLayout = "2006-01-02T15"

// bucketKey is "tenant/hour/meter/dimension/service": a tenant's buckets
// are together and in time order. Tenants, hours, meters and services hold
// no "/"; only the dimension may, and nothing parses past the hour.
func bucketKey(tenant string, hour time.Time, meter, dim, service string) string {
	return tenant + "/" + hour.UTC().Format(hourLayout) + "/" + meter + "/" + dim + "/" + service
}

func splitKey(key string) (tenant, hour string, ok bool) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) < 3 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func putJSON(kind, key string, v any) state.Op {
	data, err := json.Marshal(v)
	if err != nil {
		// Only this package's own types are stored; they always marshal.
		panic(fmt.Sprintf("metering: marshal %s/%s: %v", kind, key, err))
	}
	return state.Op{Kind: kind, Key: key, Value: data}
}
