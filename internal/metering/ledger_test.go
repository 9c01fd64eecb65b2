package metering

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/state"
)

func openStore(t *testing.T) *state.DB {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// TestBill: usage metered over two months, billed for one under a rate
// card with a per-dimension price; every amount exact.
func TestBill(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	fp := fabric.Footprint{
		Running: []fabric.RunningInstance{
			{Tenant: "acme", Service: "web", Runtime: api.RuntimeProcess, Size: api.Size{CPU: 0.25, Memory: 128 << 20}},
			{Tenant: "acme", Service: "web", Runtime: api.RuntimeProcess, Size: api.Size{CPU: 0.25, Memory: 128 << 20}},
			{Tenant: "acme", Service: "api", Runtime: api.RuntimeContainer, Size: api.Size{CPU: 1, Memory: 1 << 30}},
			{Tenant: "acme", Service: "db", Runtime: api.RuntimeVM, Size: api.Size{CPU: 2, Memory: 4 << 30}, VM: true},
			{Tenant: "other", Service: "web", Runtime: api.RuntimeProcess, Size: api.Size{CPU: 0.25, Memory: 128 << 20}},
		},
		Disks: []fabric.VMDisk{{Tenant: "acme", Service: "db", Name: "os", Size: 10 << 30}},
	}
	now := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
	m := New(Config{Store: store, Footprint: func() fabric.Footprint { return fp }, Now: func() time.Time { return now }})
	// 23:00 Nov 30 to 01:00 Dec 1, in 10-minute steps: one hour in each month.
	for range 13 {
		if err := m.Step(ctx); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Minute)
	}

	l := NewLedger(store)
	dec, _ := ParseMonth("2026-12")
	if _, err := l.Bill("acme", dec); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("bill without a rate card: %v, want not found", err)
	}
	var card api.RateCard
	if err := json.Unmarshal([]byte(`{"currency": "EUR", "meters": {
		"instance-seconds": {"price": 0.0000125, "dimensions": {"process/0.25cpu-128Mi": "0.000003"}},
		"vm-seconds": {"price": "0.00011"},
		"disk-gib-hours": {"price": "0.000137"}}}`), &card); err != nil {
		t.Fatal(err)
	}
	if err := l.SetRateCard(ctx, card); err != nil {
		t.Fatal(err)
	}
	bill, err := l.Bill("acme", dec)
	if err != nil {
		t.Fatal(err)
	}
	want := api.Bill{Tenant: "acme", Month: "2026-12", Currency: "EUR", Lines: []api.BillLine{
		{Meter: "disk-gib-hours", Quantity: 10, Unit: "GiB-hour", UnitPrice: "0.000137", Amount: "0.001370"},
		{Meter: "instance-seconds", Dimension: "container/1cpu-1Gi", Quantity: 3600, Unit: "second", UnitPrice: "0.0000125", Amount: "0.045000"},
		{Meter: "instance-seconds", Dimension: "process/0.25cpu-128Mi", Quantity: 7200, Unit: "second", UnitPrice: "0.000003", Amount: "0.021600"},
		{Meter: "vm-seconds", Dimension: "2cpu-4Gi", Quantity: 3600, Unit: "second", UnitPrice: "0.00011", Amount: "0.396000"},
	}, Total: "0.463970"}
	if diff := cmp.Diff(want, bill); diff != "" {
		t.Errorf("bill (-want +got):\n%s", diff)
	}

	// Rounding: a third of a micro-unit rounds down, a half away from zero.
	card.Meters = map[string]api.MeterPrice{api.MeterInstanceSeconds: {Price: "0.0000000001"}}
	if err := l.SetRateCard(ctx, card); err != nil {
		t.Fatal(err)
	}
	bill, err = l.Bill("other", dec)
	if err != nil {
		t.Fatal(err)
	}
	if len(bill.Lines) != 1 || bill.Lines[0].Amount != "0.000000" || bill.Total != "0.000000" {
		t.Errorf("3600 s at 1e-10: %+v", bill)
	}
	card.Meters = map[string]api.MeterPrice{api.MeterInstanceSeconds: {Price: "0.00000000125"}}
	if err := l.SetRateCard(ctx, card); err != nil {
		t.Fatal(err)
	}
	if bill, _ = l.Bill("other", dec); bill.Total != "0.000005" { // 4.5 micro-units
		t.Errorf("3600 s at 1.25e-9: total %s, want 0.000005", bill.Total)
	}
}

// TestRateCardRefused: each bad card is refused naming its field, and the
// stored card stays.
func TestRateCardRefused(t *testing.T) {
	store := openStore(t)
	l := NewLedger(store)
	good := api.RateCard{Currency: "EUR", Meters: map[string]api.MeterPrice{"vm-seconds": {Price: "0.1"}}}
	if err := l.SetRateCard(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, field string
		card        api.RateCard
	}{
		{"no currency", "currency", api.RateCard{Meters: good.Meters}},
		{"unknown meter", "meters.cpu-hours", api.RateCard{Currency: "EUR", Meters: map[string]api.MeterPrice{"cpu-hours": {Price: "1"}}}},
		{"negative", "meters.vm-seconds.price", api.RateCard{Currency: "EUR", Meters: map[string]api.MeterPrice{"vm-seconds": {Price: "-0.1"}}}},
		{"not a number", "meters.vm-seconds.price", api.RateCard{Currency: "EUR", Meters: map[string]api.MeterPrice{"vm-seconds": {Price: "1e-3"}}}},
		{"negative dimension", "meters.vm-seconds.dimensions.2cpu-4Gi", api.RateCard{Currency: "EUR", Meters: map[string]api.MeterPrice{
			"vm-seconds": {Price: "1", Dimensions: map[string]api.Decimal{"2cpu-4Gi": "-1"}}}}},
		{"no meters", "meters", api.RateCard{Currency: "EUR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.SetRateCard(context.Background(), tc.card)
			if !errors.Is(err, api.ErrInvalid) || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Errorf("got %v, want invalid naming %s", err, tc.field)
			}
			if got, _ := l.RateCard(); !cmp.Equal(got, good) {
				t.Errorf("stored card changed to %+v", got)
			}
		})
	}
}
