package controlapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/httpapi"
)

// scope is the tenant a request acts in. A tenant's token acts in its own
// tenant only: naming another answers 404, as another tenant's objects do.
// The operator (and a server) acts in the tenant ?tenant= names, the
// default tenant when it names none; with all, ?tenant=* lists every
// tenant's objects.
func (s *server) scope(r *http.Request, all bool) (string, error) {
	p := access.From(r.Context())
	named := r.URL.Query().Get("tenant")
	if p.Role == access.Tenant {
		if named != "" && named != p.Tenant {
			return "", api.Errorf(api.CodeNotFound, "no tenant named %s", named)
		}
		return p.Tenant, nil
	}
	switch {
	case named == "":
		return api.DefaultTenant, nil
	case named == api.AllTenants && all:
		return named, nil
	case named == api.AllTenants:
		return "", api.Errorf(api.CodeInvalid, "tenant: * lists every tenant's objects; name the one tenant to act in")
	}
	if err := api.ValidateTenantName(named); err != nil {
		return "", err
	}
	if s.tenants != nil && !s.tenants.Exists(named) {
		return "", api.Errorf(api.CodeNotFound, "no tenant named %s", named)
	}
	return named, nil
}

func (s *server) tenantRoutes(route func(string, httpapi.HandlerFunc), list func(string, scopedFunc)) {
	route("GET /v1/whoami", s.whoami)
	route("POST /v1/tenants", s.createTenant)
	route("GET /v1/tenants", s.listTenants)
	route("GET /v1/tenants/{name}", s.tenant)
	route("DELETE /v1/tenants/{name}", s.deleteTenant)
	route("PUT /v1/tenants/{name}/quota", s.setQuota)
	route("POST /v1/tokens", s.createToken)
	list("GET /v1/tokens", s.listTokens)
	route("DELETE /v1/tokens/{id}", s.revokeToken)
	route("POST /v1/signin-links", s.createSignInLink)
	route("POST /v1/sessions", s.createSession)
	route("DELETE /v1/sessions/current", s.endSession)
	route("GET /v1/audit", s.auditLog)
}

// whoami tells callers who the API takes them for.
func (s *server) whoami(w http.ResponseWriter, r *http.Request) error {
	p := access.From(r.Context())
	return ok(w, api.WhoAmI{Role: string(p.Role), Tenant: p.Tenant, Access: p.Access, Token: p.Name, Description: p.String()})
}

func (s *server) createTenant(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateTenant
	if err := decode(w, r, &req); err != nil {
		return err
	}
	t, err := s.tenants.Create(r.Context(), req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, s.withUsage(t))
	return nil
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) error {
	list := s.tenants.List()
	for i := range list {
		list[i] = s.withUsage(list[i])
	}
	return ok(w, list)
}

// tenant shows a tenant, with what it uses: to the operator, or to the
// tenant's own tokens.
func (s *server) tenant(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if p := access.From(r.Context()); p.Role == access.Tenant && p.Tenant != name {
		return api.Errorf(api.CodeNotFound, "no tenant named %s", name)
	}
	t, err := s.tenants.Get(name)
	if err != nil {
		return err
	}
	return ok(w, s.withUsage(t))
}

func (s *server) withUsage(t api.Tenant) api.Tenant {
	t.Used = s.ctl.Usage(t.Name)
	if s.ledger != nil {
		t.Used.Storage = s.ledger.StorageBytes(t.Name, time.Now())
	}
	return t
}

func (s *server) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var owned []string
	if n := len(s.ctl.Services(r.Context(), name)); n > 0 {
		owned = append(owned, plural(n, "service or VM", "services or VMs"))
	}
	own := 0
	for _, img := range s.images.List(name) {
		if img.Tenant == name {
			own++
		}
	}
	if own > 0 {
		owned = append(owned, plural(own, "image", "images"))
	}
	if n := s.accounts.Owned(name); n > 0 {
		owned = append(owned, plural(n, "storage account", "storage accounts"))
	}
	if n := s.networksOwned(name); n > 0 {
		owned = append(owned, plural(n, "network", "networks"))
	}
	t, err := s.tenants.Delete(r.Context(), name, owned)
	if err != nil {
		return err
	}
	return ok(w, t)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func (s *server) setQuota(w http.ResponseWriter, r *http.Request) error {
	var req api.SetQuota
	if err := decode(w, r, &req); err != nil {
		return err
	}
	t, err := s.tenants.SetQuota(r.Context(), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	return ok(w, s.withUsage(t))
}

// createToken: the operator makes any token; a tenant's owner makes tokens
// of its own tenant, never an operator's.
func (s *server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateToken
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p := access.From(r.Context())
	if err := grantable(p, &req.Tenant, req.Role); err != nil {
		return err
	}
	tok, err := s.tenants.CreateToken(r.Context(), req, p.String())
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, tok)
	return nil
}

// grantable checks what a token or a sign-in link would grant: a tenant's
// owner grants access to its own tenant only (its tenant when it names
// none), never the operator's; the operator grants anything.
func grantable(p access.Principal, tenant *string, role string) error {
	if p.Role != access.Tenant {
		return nil
	}
	if *tenant == "" {
		*tenant = p.Tenant
	}
	if *tenant != p.Tenant {
		return api.Errorf(api.CodeNotFound, "no tenant named %s", *tenant)
	}
	if role == api.AccessOperator {
		return api.Errorf(api.CodeForbidden, "role: only the operator grants the operator's access")
	}
	return nil
}

// listTokens lists a tenant's tokens; the operator's ?tenant=* lists every
// token, operator tokens included.
func (s *server) listTokens(w http.ResponseWriter, r *http.Request, tenant string) error {
	return ok(w, s.tenants.Tokens(tenant))
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	t, found := s.tenants.Token(id)
	if p := access.From(r.Context()); !found || (p.Role == access.Tenant && t.Tenant != p.Tenant) {
		return api.Errorf(api.CodeNotFound, "no token %s", id)
	}
	t, err := s.tenants.Revoke(r.Context(), id)
	if err != nil {
		return err
	}
	return ok(w, t)
}

func (s *server) createSignInLink(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateSignInLink
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p := access.From(r.Context())
	if err := grantable(p, &req.Tenant, req.Role); err != nil {
		return err
	}
	link, err := s.tenants.CreateSignInLink(r.Context(), req, s.portal, p.String())
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, link)
	return nil
}

// createSession trades a sign-in link's code for a token, once.
func (s *server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateSession
	if err := decode(w, r, &req); err != nil {
		return err
	}
	tok, err := s.tenants.Redeem(r.Context(), req.Code)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, tok)
	return nil
}

// endSession revokes the token the caller signed in with.
func (s *server) endSession(w http.ResponseWriter, r *http.Request) error {
	p := access.From(r.Context())
	if p.Name == "" || (p.Role != access.Tenant && p.Role != access.Operator) {
		return api.Errorf(api.CodeInvalid, "this credential is not a token that can be revoked (the admin token stays until the server's data folder changes)")
	}
	t, err := s.tenants.Revoke(r.Context(), p.Name)
	if err != nil {
		return err
	}
	return ok(w, t)
}

func (s *server) auditLog(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		var err error
		if since, err = time.Parse(time.RFC3339, v); err != nil {
			return api.Errorf(api.CodeInvalid, "since: %q is not an RFC 3339 time", v)
		}
	}
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return api.Errorf(api.CodeInvalid, "limit: %q is not a positive number", v)
		}
		limit = n
	}
	return ok(w, s.audit.List(since, limit))
}

// networksOwned counts a tenant's networks; none where the API serves no
// networks (tests of other parts).
func (s *server) networksOwned(tenant string) int {
	if s.networks == nil {
		return 0
	}
	return s.networks.Owned(tenant)
}
