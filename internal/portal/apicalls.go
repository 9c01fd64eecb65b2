package portal

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
)

// The API routes of tenancy, tokens, sessions, the audit log and metering,
// which not every server has: every call to them is here. A route the
// server lacks answers 404 (the API's catch-all), which the pages show as
// "not available on this server" (errNotAvailable).
//
// The wire types below mirror those of package api for these routes
// (Tenant, Quota, Usage, Token, NewToken, AuditEntry, WhoAmI, UsageRecord,
// Bill): replace them with api's once both are in one tree.

// WhoAmI is who the API takes a token for (GET /v1/whoami).
type WhoAmI struct {
	Role        string `json:"role"` // operator, tenant
	Tenant      string `json:"tenant,omitempty"`
	Access      string `json:"access,omitempty"` // owner, contributor, reader
	Token       string `json:"token,omitempty"`
	Description string `json:"description"`
}

// Tenant is a tenant with its quota and what it uses now.
type Tenant struct {
	Name      string    `json:"name"`
	Quota     Quota     `json:"quota"`
	Used      Usage     `json:"used"`
	CreatedAt time.Time `json:"createdAt"`
}

// Quota is what a tenant may use at once; nil is unlimited.
type Quota struct {
	CPU       *float64   `json:"cpu,omitempty"`
	Memory    *api.Bytes `json:"memory,omitempty"`
	Instances *int       `json:"instances,omitempty"`
	VMs       *int       `json:"vms,omitempty"`
	Disk      *api.Bytes `json:"disk,omitempty"`
	Storage   *api.Bytes `json:"storage,omitempty"`
	Endpoints *int       `json:"endpoints,omitempty"`
}

// Usage is what a tenant's objects take, in the quota's terms.
type Usage struct {
	CPU       float64   `json:"cpu"`
	Memory    api.Bytes `json:"memory"`
	Instances int       `json:"instances"`
	VMs       int       `json:"vms"`
	Disk      api.Bytes `json:"disk"`
	Storage   api.Bytes `json:"storage"`
	Endpoints int       `json:"endpoints"`
}

// Token is an API token as listed (without its secret).
type Token struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant,omitempty"`
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	Expires     time.Time `json:"expires"`
	CreatedAt   time.Time `json:"createdAt"`
	CreatedBy   string    `json:"createdBy,omitempty"`
}

// NewToken is a token just made, with its secret.
type NewToken struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant,omitempty"`
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
}

// AuditEntry is one change made through the API.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Who    string    `json:"who"`
	From   string    `json:"from"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Tenant string    `json:"tenant,omitempty"`
	Status int       `json:"status"`
}

// UsageRecord is one hour of one meter of one service of a tenant.
type UsageRecord struct {
	Tenant    string    `json:"tenant"`
	Service   string    `json:"service"`
	Hour      time.Time `json:"hour"`
	Meter     string    `json:"meter"`
	Dimension string    `json:"dimension,omitempty"`
	Quantity  float64   `json:"quantity"`
	Unit      string    `json:"unit"`
}

// Bill is a tenant's bill for a month.
type Bill struct {
	Tenant   string     `json:"tenant"`
	Month    string     `json:"month"`
	Currency string     `json:"currency"`
	Lines    []BillLine `json:"lines"`
	Total    string     `json:"total"`
}

// BillLine is one meter and dimension of a bill.
type BillLine struct {
	Meter     string  `json:"meter"`
	Dimension string  `json:"dimension,omitempty"`
	Quantity  float64 `json:"quantity"`
	Unit      string  `json:"unit"`
	UnitPrice string  `json:"unitPrice"`
	Amount    string  `json:"amount"`
}

// errNotAvailable: the server has no such route (yet).
var errNotAvailable = errors.New("portal: not available on this server")

// optional turns the API's "no such route" into errNotAvailable.
func optional(err error) error {
	if client.IsNotFound(err) {
		return errNotAvailable
	}
	return err
}

// whoAmI asks the API who the token is. A server without GET /v1/whoami
// (before tenancy) knows the operator's token only: a token that may read
// the status is the operator.
func whoAmI(ctx context.Context, c *client.Client) (WhoAmI, error) {
	var who WhoAmI
	_, err := c.Do(ctx, http.MethodGet, "/v1/whoami", nil, nil, &who)
	if client.IsNotFound(err) {
		if _, err := c.Status(ctx); err != nil {
			return who, err
		}
		return WhoAmI{Role: "operator", Description: "the operator"}, nil
	}
	return who, err
}

// createSession trades a one-time sign-in link's code for a token
// (POST /v1/sessions, anonymous).
func createSession(ctx context.Context, c *client.Client, code string) (NewToken, error) {
	var tok NewToken
	_, err := c.Do(ctx, http.MethodPost, "/v1/sessions", nil, map[string]string{"code": code}, &tok)
	return tok, err
}

// endSession revokes the session's token if it was made for a session
// (DELETE /v1/sessions/current); a server without the route keeps it.
func endSession(ctx context.Context, c *client.Client) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/sessions/current", nil, nil, nil)
	if client.IsNotFound(err) {
		return nil
	}
	return err
}

func tenant(ctx context.Context, c *client.Client, name string) (Tenant, error) {
	var t Tenant
	_, err := c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(name), nil, nil, &t)
	return t, optional(err)
}

func tenants(ctx context.Context, c *client.Client) ([]Tenant, error) {
	var list []Tenant
	_, err := c.Do(ctx, http.MethodGet, "/v1/tenants", nil, nil, &list)
	return list, optional(err)
}

func createTenant(ctx context.Context, c *client.Client, name string) error {
	_, err := c.Do(ctx, http.MethodPost, "/v1/tenants", nil, map[string]string{"name": name}, nil)
	return optional(err)
}

// setQuota replaces the quota fields given; unlimited names fields to lift.
func setQuota(ctx context.Context, c *client.Client, name string, q Quota, unlimited []string) error {
	body := struct {
		Quota
		Unlimited []string `json:"unlimited,omitempty"`
	}{q, unlimited}
	_, err := c.Do(ctx, http.MethodPut, "/v1/tenants/"+url.PathEscape(name)+"/quota", nil, body, nil)
	return optional(err)
}

func tokens(ctx context.Context, c *client.Client) ([]Token, error) {
	var list []Token
	_, err := c.Do(ctx, http.MethodGet, "/v1/tokens", nil, nil, &list)
	return list, optional(err)
}

func createToken(ctx context.Context, c *client.Client, tenant, role, description, expires string) (NewToken, error) {
	var tok NewToken
	body := map[string]string{"tenant": tenant, "role": role, "description": description, "expires": expires}
	_, err := c.Do(ctx, http.MethodPost, "/v1/tokens", nil, body, &tok)
	return tok, optional(err)
}

func deleteToken(ctx context.Context, c *client.Client, id string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, nil)
	return optional(err)
}

func auditLog(ctx context.Context, c *client.Client) ([]AuditEntry, error) {
	var list []AuditEntry
	_, err := c.Do(ctx, http.MethodGet, "/v1/audit", nil, nil, &list)
	return list, optional(err)
}

// usage is a tenant's usage records from the start of month to its end.
func usage(ctx context.Context, c *client.Client, tenant string, month time.Time) ([]UsageRecord, error) {
	q := url.Values{"tenant": {tenant}, "from": {month.Format(time.RFC3339)}, "to": {month.AddDate(0, 1, 0).Format(time.RFC3339)}}
	var list []UsageRecord
	_, err := c.Do(ctx, http.MethodGet, "/v1/usage", q, nil, &list)
	return list, optional(err)
}

func bill(ctx context.Context, c *client.Client, tenant string, month time.Time) (Bill, error) {
	q := url.Values{"tenant": {tenant}, "month": {month.Format("2006-01")}}
	var b Bill
	_, err := c.Do(ctx, http.MethodGet, "/v1/bills", q, nil, &b)
	return b, optional(err)
}
