package client

import (
	"context"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// WhoAmI says who the API takes the client's credentials for.
func (c *Client) WhoAmI(ctx context.Context) (api.WhoAmI, error) {
	var w api.WhoAmI
	_, err := c.Do(ctx, "GET", "/v1/whoami", nil, nil, &w)
	return w, err
}

// EndSession revokes the token the client presents (DELETE
// /v1/sessions/current). The admin token cannot be revoked: api.ErrInvalid.
func (c *Client) EndSession(ctx context.Context) error {
	_, err := c.Do(ctx, "DELETE", "/v1/sessions/current", nil, nil, nil)
	return err
}

// CreateTenant makes a tenant (the operator's).
func (c *Client) CreateTenant(ctx context.Context, req api.CreateTenant) (api.Tenant, error) {
	var t api.Tenant
	_, err := c.Do(ctx, "POST", "/v1/tenants", nil, req, &t)
	return t, err
}

// Tenants lists the tenants with what each uses.
func (c *Client) Tenants(ctx context.Context) ([]api.Tenant, error) {
	var list []api.Tenant
	_, err := c.Do(ctx, "GET", "/v1/tenants", nil, nil, &list)
	return list, err
}

// Tenant returns one tenant with what it uses.
func (c *Client) Tenant(ctx context.Context, name string) (api.Tenant, error) {
	var t api.Tenant
	_, err := c.Do(ctx, "GET", "/v1/tenants/"+url.PathEscape(name), nil, nil, &t)
	return t, err
}

// DeleteTenant deletes a tenant that owns nothing, and its tokens.
func (c *Client) DeleteTenant(ctx context.Context, name string) (api.Tenant, error) {
	var t api.Tenant
	_, err := c.Do(ctx, "DELETE", "/v1/tenants/"+url.PathEscape(name), nil, nil, &t)
	return t, err
}

// SetQuota changes a tenant's quota and ports.
func (c *Client) SetQuota(ctx context.Context, name string, req api.SetQuota) (api.Tenant, error) {
	var t api.Tenant
	_, err := c.Do(ctx, "PUT", "/v1/tenants/"+url.PathEscape(name)+"/quota", nil, req, &t)
	return t, err
}

// CreateToken makes a token; its secret is in the answer only.
func (c *Client) CreateToken(ctx context.Context, req api.CreateToken) (api.NewToken, error) {
	var t api.NewToken
	_, err := c.Do(ctx, "POST", "/v1/tokens", nil, req, &t)
	return t, err
}

// Tokens lists the tokens of the client's tenant (the operator's: of
// WithTenant's, or every token with api.AllTenants).
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var list []api.Token
	_, err := c.Do(ctx, "GET", "/v1/tokens", nil, nil, &list)
	return list, err
}

// RevokeToken revokes a token by its ID.
func (c *Client) RevokeToken(ctx context.Context, id string) (api.Token, error) {
	var t api.Token
	_, err := c.Do(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil, &t)
	return t, err
}

// CreateSignInLink makes a one-time portal sign-in link.
func (c *Client) CreateSignInLink(ctx context.Context, req api.CreateSignInLink) (api.SignInLink, error) {
	var l api.SignInLink
	_, err := c.Do(ctx, "POST", "/v1/signin-links", nil, req, &l)
	return l, err
}

// Redeem trades a sign-in link's code for a token.
func (c *Client) Redeem(ctx context.Context, code string) (api.NewToken, error) {
	var t api.NewToken
	_, err := c.Do(ctx, "POST", "/v1/sessions", nil, api.CreateSession{Code: code}, &t)
	return t, err
}

// Audit lists the changes made through the API, oldest first.
func (c *Client) Audit(ctx context.Context, query url.Values) ([]api.AuditEntry, error) {
	var list []api.AuditEntry
	_, err := c.Do(ctx, "GET", "/v1/audit", query, nil, &list)
	return list, err
}
