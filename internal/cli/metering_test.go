package cli

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/metering"
	"github.com/weftcloud/weft/internal/state"
)

// meteringController is the real metering API over a real store in which
// a meter counted two services of tenant acme from 23:30 on November 30
// to 00:30 on December 1 (UTC).
func meteringController(t *testing.T) string {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fp := fabric.Footprint{
		Running: []fabric.RunningInstance{
			{Tenant: "acme", Service: "web", Runtime: api.RuntimeProcess, Size: api.Size{CPU: 0.25, Memory: 128 << 20}},
			{Tenant: "acme", Service: "db", Runtime: api.RuntimeVM, Size: api.Size{CPU: 2, Memory: 4 << 30}, VM: true},
		},
		Disks: []fabric.VMDisk{{Tenant: "acme", Service: "db", Name: "os", Size: 10 << 30}},
	}
	clock := time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC)
	m := metering.New(metering.Config{Store: store, Footprint: func() fabric.Footprint { return fp }, Now: func() time.Time { return clock }})
	for range 5 {
		if err := m.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(15 * time.Minute)
	}
	srv := httptest.NewServer(controlapi.Metering(metering.NewLedger(store), func() time.Time { return clock }, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestMeteringCommands(t *testing.T) {
	addr := meteringController(t)
	dir := t.TempDir()
	card := filepath.Join(dir, "card.yaml")
	os.WriteFile(card, []byte(`currency: EUR
meters:
  instance-seconds:
    price: 0.0000125
    dimensions:
      process/0.25cpu-128Mi: "0.000003"
  vm-seconds: {price: 0.00011}
  disk-gib-hours: {price: "0.000137"}
`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"currency": "EUR", "meters": {"vm-seconds": {"price": -1}}}`), 0o644)
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("currency: EUR\nmeters:\n  vm-seconds: {prise: 1}\n"), 0o644)

	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"ratecard-set.golden", []string{"ratecard", "set", card}},
		{"ratecard-show.json.golden", []string{"ratecard", "show", "-o", "json"}},
		{"usage.golden", []string{"usage", "--tenant", "acme", "--from", "2026-11-30", "--to", "2026-12-01"}},
		{"usage.csv.golden", []string{"usage", "--tenant", "acme", "--from", "2026-11-30", "-o", "csv"}},
		{"usage.json.golden", []string{"usage", "--from", "2026-12-01T00:00:00Z", "-o", "json"}},
		{"bill.golden", []string{"bill", "--tenant", "acme", "--month", "2026-12"}},
		{"bill.json.golden", []string{"bill", "--tenant", "acme", "--month", "2026-12", "-o", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := weft(t, addr, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, tc.golden, out)
		})
	}

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"ratecard", "set", bad}, 1, "meters.vm-seconds.price: -1 is negative"},
		{[]string{"ratecard", "set", typo}, 1, "meters.vm-seconds.prise: line 3: unknown field"},
		{[]string{"usage", "--from", "tomorrow"}, 1, "from: \"tomorrow\" is neither"},
		{[]string{"bill", "--tenant", "acme"}, 2, "--tenant and --month are required"},
		{[]string{"bill", "--tenant", "acme", "--month", "12/2026"}, 1, "month:"},
		{[]string{"services", "-o", "csv"}, 2, "--output"},
	} {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			_, errOut, code := weft(t, addr, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.stderr)
			}
		})
	}
	// The refused cards left the first one in place.
	out, _, _ := weft(t, addr, "ratecard", "show", "-o", "json")
	checkGolden(t, "ratecard-show.json.golden", out)
}
