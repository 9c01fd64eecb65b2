package metering

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Usage the fabric cannot see (bytes through a server's load balancer, the
// requests its storage served) is counted where it happens, on every
// server, and reaches the meter through reports: each server keeps
// cumulative counts since its process started, under a random boot ID,
// and every ReportInterval overwrites its report (kind state.KindMetering,
// key "report/SERVER") with them. The meter's step adds, for each report,
// the difference from the counts it last consumed (key "consumed/SERVER",
// written in the same checked batch as the buckets), so a report written
// twice, read by two meters or left unchanged counts once. Under a new
// boot ID the counts start again from zero. What a server counted after
// its last report and before it stopped is lost (at most one interval).

// Report is one server's counts since its process started, and its
// gauges: quantities it holds now (a storage account's GiB), which each
// step counts for its length like the fabric's footprint, from the
// freshest report that has them.
type Report struct {
	Server string    `json:"server"`
	Boot   string    `json:"boot"`
	At     time.Time `json:"at"`
	Counts []Count   `json:"counts"`
	Gauges []Count   `json:"gauges,omitempty"`
}

// Count is a cumulative quantity of one meter, in the meter's unit.
type Count struct {
	Tenant    string  `json:"tenant"`
	Service   string  `json:"service"` // the service, or the storage account
	Meter     string  `json:"meter"`
	Dimension string  `json:"dimension,omitempty"`
	Value     float64 `json:"value"`
}

func (c Count) key() string { return c.Tenant + "/" + c.Meter + "/" + c.Dimension + "/" + c.Service }

// consumed is what the meter last counted of a server's report.
type consumed struct {
	Boot      string             `json:"boot"`
	ReportRev uint64             `json:"reportRev"`
	Counts    map[string]float64 `json:"counts"`
}

const (
	reportPrefix   = "report/"
	consumedPrefix = "consumed/"
	// ReportInterval is how often a server sends its counts.
	ReportInterval = 30 * time.Second
)

// validate checks a report a server sent.
func (r Report) validate() error {
	if err := api.ValidateNodeName(r.Server); err != nil {
		return api.Errorf(api.CodeInvalid, "server: %v", err)
	}
	if r.Boot == "" {
		return api.Errorf(api.CodeInvalid, "boot: required")
	}
	for field, list := range map[string][]Count{"counts": r.Counts, "gauges": r.Gauges} {
		for i, c := range list {
			if _, ok := api.MeterUnits[c.Meter]; !ok {
				return api.Errorf(api.CodeInvalid, "%s[%d].meter: unknown meter %q", field, i, c.Meter)
			}
			if api.ValidateTenantName(c.Tenant) != nil {
				return api.Errorf(api.CodeInvalid, "%s[%d].tenant: %q is not a tenant name", field, i, c.Tenant)
			}
			if c.Value < 0 || math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
				return api.Errorf(api.CodeInvalid, "%s[%d].value: %v is not a quantity", field, i, c.Value)
			}
		}
	}
	return nil
}

// PutReport stores a server's report, replacing its last one.
func (l *Ledger) PutReport(ctx context.Context, r Report) error {
	if err := r.validate(); err != nil {
		return err
	}
	if _, err := l.store.Apply(ctx, []state.Op{putJSON(state.KindMetering, reportPrefix+r.Server, r)}); err != nil {
		return fmt.Errorf("metering: store the report of %s: %w", r.Server, err)
	}
	return nil
}

// gaugeFresh is how old a report may be for its gauges to count: a
// server that stopped reporting (it died, or its storage moved to another
// server) no longer holds what it reported.
const gaugeFresh = 2*ReportInterval + 30*time.Second

// reportOps adds to usage, in the hour of now, what each server's report
// counted since the meter last consumed it, and returns the checked writes
// of what it consumed. It adds the gauges of the freshest reports over
// [from, now), split at hours.
func (m *Meter) reportOps(from, now time.Time, usage map[string]*api.UsageRecord) []state.Op {
	hour := now.Truncate(time.Hour)
	var ops []state.Op
	for _, e := range m.cfg.Store.List(state.KindMetering, reportPrefix) {
		var r Report
		if err := json.Unmarshal(e.Value, &r); err != nil {
			m.log.Error("metering: unreadable report skipped", "key", e.Key, "err", err)
			continue
		}
		key := consumedPrefix + r.Server
		var prev consumed
		ce, seen := m.cfg.Store.Get(state.KindMetering, key)
		if seen {
			if err := json.Unmarshal(ce.Value, &prev); err != nil {
				m.log.Error("metering: unreadable consumed counts replaced", "key", key, "err", err)
			}
		}
		if seen && prev.ReportRev == e.Rev {
			continue // nothing new
		}
		// Counts of one key (a service's several endpoints) add up.
		next := consumed{Boot: r.Boot, ReportRev: e.Rev, Counts: make(map[string]float64, len(r.Counts))}
		first := map[string]Count{}
		for _, c := range r.Counts {
			k := c.key()
			next.Counts[k] += c.Value
			if _, ok := first[k]; !ok {
				first[k] = c
			}
		}
		for k, c := range first {
			d := next.Counts[k]
			if prev.Boot == r.Boot {
				d -= prev.Counts[k]
			}
			if d > 0 {
				addUsage(usage, c.Tenant, c.Service, hour, c.Meter, c.Dimension, d)
			}
		}
		ops = append(ops, state.Op{Kind: state.KindMetering, Key: key, Check: true, Rev: ce.Rev},
			putJSON(state.KindMetering, key, next))
	}
	gauges := freshGauges(m.cfg.Store, now)
	eachHour(from, now, func(hour time.Time, secs float64) {
		for _, g := range gauges {
			addUsage(usage, g.Tenant, g.Service, hour, g.Meter, g.Dimension, g.Value*secs/3600)
		}
	})
	return ops
}

// freshGauges returns, for each gauge, its value in the freshest report
// that has it, among reports at most gaugeFresh old at now.
func freshGauges(st state.Store, now time.Time) map[string]Count {
	gauges := map[string]Count{}
	at := map[string]time.Time{}
	for _, e := range st.List(state.KindMetering, reportPrefix) {
		var r Report
		if json.Unmarshal(e.Value, &r) != nil || now.Sub(r.At) > gaugeFresh {
			continue
		}
		for _, g := range r.Gauges {
			if k := g.key(); r.At.After(at[k]) {
				gauges[k], at[k] = g, r.At
			}
		}
	}
	return gauges
}

// StorageBytes is what a tenant's storage accounts hold, as their
// storage's last reports say (0 when none is fresh).
func (l *Ledger) StorageBytes(tenant string, now time.Time) api.Bytes {
	var gib float64
	for _, g := range freshGauges(l.store, now) {
		if g.Tenant == tenant && g.Meter == api.MeterStorageGiBHours {
			gib += g.Value
		}
	}
	return api.Bytes(math.Round(gib * (1 << 30)))
}

// Reporter sends one server's counts every interval.
type Reporter struct {
	Server string
	// Collect returns the server's cumulative counts and its gauges now.
	Collect func() (counts, gauges []Count)
	// Send stores a report (through the API, on the leader).
	Send     func(context.Context, Report) error
	Interval time.Duration // default ReportInterval
	Logger   *slog.Logger
}

// Run reports every interval until ctx ends, and once more then (with a
// short deadline), so a server that stops leaves its last counts.
func (r *Reporter) Run(ctx context.Context) {
	interval := r.Interval
	if interval <= 0 {
		interval = ReportInterval
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := make([]byte, 8)
	rand.Read(b)
	boot := hex.EncodeToString(b)
	send := func(ctx context.Context) error {
		counts, gauges := r.Collect()
		if len(counts)+len(gauges) == 0 {
			return nil
		}
		return r.Send(ctx, Report{Server: r.Server, Boot: boot, At: time.Now().UTC(), Counts: counts, Gauges: gauges})
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := send(last); err != nil {
				log.Info("metering: last report not sent", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := send(ctx); err != nil && ctx.Err() == nil {
				log.Warn("metering: report not sent; its counts go with the next", "err", err)
			}
		}
	}
}

// Client sends reports to a server's API (PUT /v1/metering/reports/NAME),
// which passes them to the leader.
type Client struct {
	HTTP *http.Client // presents this server's credentials
	Base string       // e.g. https://10.0.0.1:7070
}

// Send stores r.
func (c Client) Send(ctx context.Context, r Report) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("metering: send report: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, strings.TrimRight(c.Base, "/")+"/v1/metering/reports/"+url.PathEscape(r.Server), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("metering: send report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("metering: send report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb) != nil || eb.Error.Code == "" {
			return fmt.Errorf("metering: send report: %s", resp.Status)
		}
		return fmt.Errorf("metering: send report: %w", &eb.Error)
	}
	return nil
}
