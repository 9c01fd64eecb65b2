package metering

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// TestReportsCountOnce: servers' cumulative counts reach the buckets as
// differences. A report read by two steps, sent twice, or read by an old
// and a new leader counts once; a restarted server (new boot) counts from
// zero; and an invalid report is refused before it is stored.
func TestReportsCountOnce(t *testing.T) {
	f := newFleet(t, t0)
	l := NewLedger(f.store)
	m := f.meter()
	f.step(m)
	report := func(server, boot string, txns, gib float64) {
		t.Helper()
		err := l.PutReport(f.ctx, Report{Server: server, Boot: boot, At: f.clock.Now(), Counts: []Count{
			{Tenant: "acme", Service: "photos", Meter: api.MeterStorageTransactions, Value: txns},
			// Two endpoints of one service: their counts add up.
			{Tenant: "acme", Service: "web", Meter: api.MeterLBGiB, Value: gib / 2},
			{Tenant: "acme", Service: "web", Meter: api.MeterLBGiB, Value: gib / 2},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	total := func() map[string]float64 {
		got := map[string]float64{}
		for _, r := range l.Usage("acme", t0, t0.Add(24*time.Hour)) {
			got[r.Meter+" "+r.Service] += r.Quantity
		}
		return got
	}
	step := func() {
		t.Helper()
		f.clock.Advance(time.Minute)
		f.step(m)
	}

	report("server-1", "a", 100, 0.5)
	report("server-2", "b", 10, 0)
	step()
	step()                            // nothing new: counts nothing
	report("server-1", "a", 100, 0.5) // the same counts again
	step()
	report("server-1", "a", 150, 1.5)
	// Two meters plan on the same reports; the second batch is refused.
	stale, err := f.meter().plan(f.clock.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	step()
	if _, err := f.store.Apply(f.ctx, stale); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("a second meter's batch over the same reports: %v, want ErrConflict", err)
	}
	report("server-1", "c", 20, 0.25) // restarted: counts from zero
	step()

	want := map[string]float64{
		api.MeterStorageTransactions + " photos": 150 + 10 + 20,
		api.MeterLBGiB + " web":                  1.5 + 0.25,
	}
	if diff := cmp.Diff(want, total()); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}

	for name, bad := range map[string]Report{
		"unknown meter":  {Server: "s", Boot: "x", Counts: []Count{{Tenant: "acme", Meter: "cpu", Value: 1}}},
		"negative count": {Server: "s", Boot: "x", Counts: []Count{{Tenant: "acme", Meter: api.MeterLBGiB, Value: -1}}},
		"bad tenant":     {Server: "s", Boot: "x", Counts: []Count{{Tenant: "Acme/x", Meter: api.MeterLBGiB, Value: 1}}},
		"no boot":        {Server: "s"},
		"bad server":     {Server: "a b", Boot: "x"},
	} {
		idx := f.store.Index()
		if err := l.PutReport(f.ctx, bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: %v, want an invalid-request error", name, err)
		}
		if f.store.Index() != idx {
			t.Errorf("%s: the refused report changed the store", name)
		}
	}
}

// TestGaugesCountForEachStep: a storage account's GiB, reported as a
// gauge, counts GiB-hours for each step from the freshest report; the
// gauges of a report older than gaugeFresh (a server whose storage moved)
// count nothing.
func TestGaugesCountForEachStep(t *testing.T) {
	f := newFleet(t, t0)
	l := NewLedger(f.store)
	m := f.meter()
	f.step(m)
	gauge := func(server string, at time.Time, gib float64) {
		t.Helper()
		if err := l.PutReport(f.ctx, Report{Server: server, Boot: "b", At: at, Gauges: []Count{
			{Tenant: "acme", Service: "photos", Meter: api.MeterStorageGiBHours, Value: gib},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	gauge("old-primary", f.clock.Now(), 9)
	f.clock.Advance(10 * time.Minute)
	gauge("primary", f.clock.Now(), 6) // the freshest says 6 GiB
	f.clock.Advance(30 * time.Second)
	f.step(m) // 10.5 minutes: but the step counts at most the cursor's gap, all of it at 6 GiB
	got := 0.0
	for _, r := range l.Usage("acme", t0, t0.Add(24*time.Hour)) {
		got += r.Quantity
	}
	if want := 6 * 10.5 / 60; math.Abs(got-want) > 1e-9 {
		t.Errorf("storage GiB-hours = %v, want %v", got, want)
	}
	if got := l.StorageBytes("acme", f.clock.Now()); got != 6<<30 {
		t.Errorf("StorageBytes = %d, want the freshest report's 6 GiB", got)
	}
	f.clock.Advance(gaugeFresh + time.Minute)
	if got := l.StorageBytes("acme", f.clock.Now()); got != 0 {
		t.Errorf("StorageBytes from stale reports = %d, want 0", got)
	}
	f.step(m)
	after := 0.0
	for _, r := range l.Usage("acme", t0, t0.Add(24*time.Hour)) {
		after += r.Quantity
	}
	if after != got {
		t.Errorf("a stale report's gauge counted: %v -> %v", got, after)
	}
}
