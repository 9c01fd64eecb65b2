package controlapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/metering"
	"github.com/weftcloud/weft/internal/state"
)

// TestMeteringAPI: tenants read usage, bills and prices and only the
// operator sets prices (the access table; the daemon's walks call them as
// every identity and as another tenant); bad queries and rate cards are answered 400 naming the field and
// leave the stored rate card as it was.
func TestMeteringAPI(t *testing.T) {
	for _, route := range controlapi.MeteringRoutes {
		want := access.TenantRead
		switch route {
		case "PUT /v1/ratecard":
			want = access.Operators
		case "PUT /v1/metering/reports/{server}":
			want = access.Servers
		}
		if rule, ok := access.RuleOf(route); !ok || rule != want {
			t.Errorf("route %s: rule %v (in table: %v), want %v", route, rule, ok, want)
		}
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := func() time.Time { return time.Date(2026, 12, 15, 12, 0, 0, 0, time.UTC) }
	srv := httptest.NewServer(controlapi.Metering(metering.NewLedger(store), now, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("GET", "/v1/ratecard", ""); code != http.StatusNotFound {
		t.Errorf("GET /v1/ratecard before any: %d %s, want 404", code, body)
	}
	const card = `{"currency": "EUR", "meters": {"vm-seconds": {"price": "0.0001"}}}`
	if code, body := call("PUT", "/v1/ratecard", card); code != http.StatusOK {
		t.Fatalf("PUT /v1/ratecard: %d %s", code, body)
	}
	for _, tc := range []struct{ method, path, body, field string }{
		{"GET", "/v1/usage?from=yesterday", "", "from:"},
		{"GET", "/v1/usage?to=2026-13-01", "", "to:"},
		{"GET", "/v1/usage?from=2026-12-10&to=2026-12-01", "", "from:"},
		{"GET", "/v1/usage?tenant=Acme/1", "", "tenant:"},
		{"GET", "/v1/bills?month=2026-12", "", "tenant:"},
		{"GET", "/v1/bills?tenant=acme", "", "month:"},
		{"GET", "/v1/bills?tenant=acme&month=2026-12-01", "", "month:"},
		{"PUT", "/v1/ratecard", `{"currency": "EUR", "meters": {"cpu-hours": {"price": "1"}}}`, "meters.cpu-hours:"},
		{"PUT", "/v1/ratecard", `{"currency": "EUR", "meters": {"vm-seconds": {"price": "-1"}}}`, "meters.vm-seconds.price:"},
		{"PUT", "/v1/ratecard", `{"currency": "EUR", "meters": {"vm-seconds": {"price": "0.1", "tax": 1}}}`, "request body:"},
		{"PUT", "/v1/ratecard", `{"currency": "euros", "meters": {"vm-seconds": {"price": "0.1"}}}`, "currency:"},
		{"PUT", "/v1/metering/reports/s1", `{"server": "s2", "boot": "b"}`, "server:"},
		{"PUT", "/v1/metering/reports/s1", `{"server": "s1", "boot": "b", "counts": [{"tenant": "acme", "meter": "cpu", "value": 1}]}`, "counts[0].meter:"},
		{"PUT", "/v1/metering/reports/s1", `{"server": "s1", "boot": "b", "gauges": [{"tenant": "acme", "meter": "lb-gib", "value": -1}]}`, "gauges[0].value:"},
	} {
		code, body := call(tc.method, tc.path, tc.body)
		var e api.ErrorBody
		json.Unmarshal([]byte(body), &e)
		if code != http.StatusBadRequest || !strings.HasPrefix(e.Error.Message, tc.field) {
			t.Errorf("%s %s %s: %d %s, want 400 naming %s", tc.method, tc.path, tc.body, code, body, tc.field)
		}
	}
	code, body := call("GET", "/v1/ratecard", "")
	var got api.RateCard
	json.Unmarshal([]byte(body), &got)
	if code != http.StatusOK || got.Meters["vm-seconds"].Price != "0.0001" || len(got.Meters) != 1 {
		t.Errorf("the stored card after refusals: %d %s", code, body)
	}
	if code, body := call("GET", "/v1/usage?tenant=acme&from=2026-12-01&to=2026-12-01T10:00:00Z", ""); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /v1/usage: %d %s, want 200 []", code, body)
	}
	if code, body := call("GET", "/v1/bills?tenant=acme&month=2026-12", ""); code != http.StatusOK || !strings.Contains(body, `"total": "0.000000"`) {
		t.Errorf("GET /v1/bills: %d %s, want an empty bill", code, body)
	}
	report := `{"server": "s1", "boot": "b", "at": "2026-12-15T12:00:00Z", "counts": [{"tenant": "acme", "service": "web", "meter": "lb-gib", "value": 1.5}]}`
	if code, body := call("PUT", "/v1/metering/reports/s1", report); code != http.StatusOK {
		t.Errorf("PUT a server's report: %d %s", code, body)
	}
}
