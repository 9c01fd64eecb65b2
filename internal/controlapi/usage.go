package controlapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/metering"
)

// MeteringRoutes are the routes Metering serves, for the daemon to mount.
var MeteringRoutes = []string{"GET /v1/usage", "GET /v1/bills", "GET /v1/ratecard", "PUT /v1/ratecard", "PUT /v1/metering/reports/{server}"}

// usageServer serves the metering API over a ledger.
type usageServer struct {
	*server
	ledger *metering.Ledger
	now    func() time.Time
}

// Metering returns the handler of MeteringRoutes: usage records, bills and
// the rate card. now gives the default end of a usage query (nil: time.Now).
func Metering(ledger *metering.Ledger, now func() time.Time, logger *slog.Logger) http.Handler {
	if now == nil {
		now = time.Now
	}
	s := &usageServer{server: &server{log: logger}, ledger: ledger, now: now}
	mux := access.NewMux()
	s.mount(mux, "GET /v1/usage", s.usage)
	s.mount(mux, "GET /v1/bills", s.bill)
	s.mount(mux, "GET /v1/ratecard", s.rateCard)
	s.mount(mux, "PUT /v1/ratecard", s.setRateCard)
	s.mount(mux, "PUT /v1/metering/reports/{server}", s.putReport)
	return mux
}

// usage answers ?tenant=T&from=&to= with the tenant's hourly records (every
// tenant's without tenant). from and to are RFC 3339 times or dates
// (YYYY-MM-DD, UTC); a date as to includes its whole day. from defaults to
// the start of the current month, to to now.
func (s *usageServer) usage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	tenant, err := tenantParam(r, false)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	from, err := timeParam("from", q.Get("from"), false, time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return err
	}
	to, err := timeParam("to", q.Get("to"), true, now)
	if err != nil {
		return err
	}
	if from.After(to) {
		return api.Errorf(api.CodeInvalid, "from: %s is after to (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	list := s.ledger.Usage(tenant, from, to)
	if list == nil {
		list = []api.UsageRecord{}
	}
	return ok(w, list)
}

// bill answers ?tenant=T&month=YYYY-MM with the tenant's bill.
func (s *usageServer) bill(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	tenant, err := tenantParam(r, true)
	if err != nil {
		return err
	}
	if q.Get("month") == "" {
		return api.Errorf(api.CodeInvalid, "month: required (YYYY-MM)")
	}
	month, err := metering.ParseMonth(q.Get("month"))
	if err != nil {
		return api.Errorf(api.CodeInvalid, "month: %v", err)
	}
	bill, err := s.ledger.Bill(tenant, month)
	if err != nil {
		return err
	}
	return ok(w, bill)
}

func (s *usageServer) rateCard(w http.ResponseWriter, r *http.Request) error {
	card, found := s.ledger.RateCard()
	if !found {
		return api.Errorf(api.CodeNotFound, "no rate card is set (weft ratecard set FILE)")
	}
	return ok(w, card)
}

func (s *usageServer) setRateCard(w http.ResponseWriter, r *http.Request) error {
	var card api.RateCard
	if err := decode(w, r, &card); err != nil {
		return err
	}
	if err := s.ledger.SetRateCard(r.Context(), card); err != nil {
		return err
	}
	return ok(w, card)
}

// putReport stores a server's metering report (metering.Report): the
// bytes through its balancer and the requests its storage served.
func (s *usageServer) putReport(w http.ResponseWriter, r *http.Request) error {
	var rep metering.Report
	if err := decode(w, r, &rep); err != nil {
		return err
	}
	server := r.PathValue("server")
	if rep.Server != server {
		return api.Errorf(api.CodeInvalid, "server: the report is %q's, sent for %q", rep.Server, server)
	}
	// A server whose certificate names it reports for itself only.
	if p := access.From(r.Context()); p.Role == access.Server && p.Name != "" && p.Name != server {
		return api.Errorf(api.CodeForbidden, "server %s may not report for %s", p.Name, server)
	}
	if err := s.ledger.PutReport(r.Context(), rep); err != nil {
		return err
	}
	return ok(w, struct{}{})
}

func tenantParam(r *http.Request, required bool) (string, error) {
	v := r.URL.Query().Get("tenant")
	// A tenant's token reads its own tenant's records only.
	if p := access.From(r.Context()); p.Role == access.Tenant {
		if v != "" && v != p.Tenant {
			return "", api.Errorf(api.CodeNotFound, "no tenant named %s", v)
		}
		return p.Tenant, nil
	}
	switch {
	case v == "" && required:
		return "", api.Errorf(api.CodeInvalid, "tenant: required")
	case v != "":
		if err := api.ValidateTenantName(v); err != nil {
			return "", api.Errorf(api.CodeInvalid, "tenant: %q is not a tenant name (lower-case letters, digits and dashes, a letter first)", v)
		}
	}
	return v, nil
}

// timeParam reads an RFC 3339 time or a date; endOfDay makes a date mean
// the end of that day rather than its start.
func timeParam(name, v string, endOfDay bool, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, api.Errorf(api.CodeInvalid, "%s: %q is neither an RFC 3339 time nor a date YYYY-MM-DD", name, v)
	}
	if endOfDay {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}
