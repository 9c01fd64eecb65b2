package portal

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
)

// The operator's pages: nodes, tenants and their quotas, tokens, usage
// and bills, and the audit log. The API decides who may see them; a
// tenant's token sees its own usage only.

func (p *portal) nodes(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := s.api.Nodes(r.Context())
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusOK, "nodes", s, list)
	return nil
}

func (p *portal) nodeAction(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, name := r.Context(), r.PathValue("name")
	var err error
	switch r.PathValue("action") {
	case "drain":
		_, err = s.api.DrainNode(ctx, name)
	case "undrain":
		_, err = s.api.UndrainNode(ctx, name)
	default:
		return api.Errorf(api.CodeNotFound, "no node action %q", r.PathValue("action"))
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/nodes", http.StatusSeeOther)
	return nil
}

// optionalView is a page's data, and what an action adds to it (a new
// token's secret, shown once).
type optionalView struct {
	Data  any
	Extra any
}

// optionalPage renders page with data, or returns err.
func (p *portal) optionalPage(w http.ResponseWriter, r *http.Request, s *session, page string, data, extra any, err error) error {
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusOK, page, s, optionalView{Data: data, Extra: extra})
	return nil
}

func (p *portal) tenants(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := tenants(r.Context(), s.api)
	return p.optionalPage(w, r, s, "tenants", list, nil, err)
}

func (p *portal) createTenant(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := createTenant(r.Context(), s.api, strings.TrimSpace(r.PostFormValue("name"))); err != nil {
		return err
	}
	http.Redirect(w, r, "/tenants", http.StatusSeeOther)
	return nil
}

// setQuota sets the fields filled in; "unlimited" in a field lifts it.
func (p *portal) setQuota(w http.ResponseWriter, r *http.Request, s *session) error {
	var q Quota
	var unlimited []string
	for _, f := range []struct {
		name  string
		parse func(string) error
	}{
		{"cpu", func(v string) error { x, err := strconv.ParseFloat(v, 64); q.CPU = &x; return err }},
		{"memory", func(v string) error { x, err := api.ParseBytes(v); q.Memory = &x; return err }},
		{"instances", func(v string) error { x, err := strconv.Atoi(v); q.Instances = &x; return err }},
		{"vms", func(v string) error { x, err := strconv.Atoi(v); q.VMs = &x; return err }},
		{"disk", func(v string) error { x, err := api.ParseBytes(v); q.Disk = &x; return err }},
		{"storage", func(v string) error { x, err := api.ParseBytes(v); q.Storage = &x; return err }},
		{"endpoints", func(v string) error { x, err := strconv.Atoi(v); q.Endpoints = &x; return err }},
	} {
		v := strings.TrimSpace(r.PostFormValue(f.name))
		switch v {
		case "":
		case "unlimited":
			unlimited = append(unlimited, f.name)
		default:
			if err := f.parse(v); err != nil {
				return api.Errorf(api.CodeInvalid, "%s: %q is not a quota (a number, a size such as 8Gi, or unlimited)", f.name, v)
			}
		}
	}
	if err := setQuota(r.Context(), s.api, r.PathValue("name"), q, unlimited); err != nil {
		return err
	}
	http.Redirect(w, r, "/tenants", http.StatusSeeOther)
	return nil
}

func (p *portal) tokens(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := tokens(r.Context(), s.api)
	return p.optionalPage(w, r, s, "tokens", list, nil, err)
}

// createToken shows the new token's secret once, on the tokens page.
func (p *portal) createToken(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	tok, err := createToken(ctx, s.api, strings.TrimSpace(r.PostFormValue("tenant")), r.PostFormValue("role"),
		r.PostFormValue("description"), strings.TrimSpace(r.PostFormValue("expires")))
	if err != nil {
		return err
	}
	list, err := tokens(ctx, s.api)
	return p.optionalPage(w, r, s, "tokens", list, &tok, err)
}

func (p *portal) deleteToken(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := deleteToken(r.Context(), s.api, r.PathValue("id")); err != nil {
		return err
	}
	http.Redirect(w, r, "/tokens", http.StatusSeeOther)
	return nil
}

type usageView struct {
	Tenant  string
	Month   string
	Records []UsageRecord
	Bill    *Bill
	BillErr string
}

// usage shows a tenant's usage records and bill for a month: the
// operator's choice of tenant, a tenant's own.
func (p *portal) usage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	v := usageView{Tenant: r.URL.Query().Get("tenant"), Month: r.URL.Query().Get("month")}
	if s.Who.Tenant != "" {
		v.Tenant = s.Who.Tenant
	}
	if v.Month == "" {
		v.Month = time.Now().UTC().Format("2006-01")
	}
	month, err := time.Parse("2006-01", v.Month)
	if err != nil {
		return api.Errorf(api.CodeInvalid, "month: %q is not YYYY-MM", v.Month)
	}
	if v.Tenant == "" {
		p.render(w, r, http.StatusOK, "usage", s, optionalView{Data: v})
		return nil
	}
	v.Records, err = usage(ctx, s.api, v.Tenant, month)
	if err != nil {
		return p.optionalPage(w, r, s, "usage", v, nil, err)
	}
	if b, err := bill(ctx, s.api, v.Tenant, month); err == nil {
		v.Bill = &b
	} else {
		v.BillErr = err.Error()
	}
	p.render(w, r, http.StatusOK, "usage", s, optionalView{Data: v})
	return nil
}

func (p *portal) audit(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := auditLog(r.Context(), s.api)
	return p.optionalPage(w, r, s, "audit", list, nil, err)
}
