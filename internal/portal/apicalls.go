package portal

import (
	"context"
	"errors"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
)

// The API's types of tenancy, tokens, the audit log and metering, under
// the names the pages use.
type (
	WhoAmI      = api.WhoAmI
	Tenant      = api.Tenant
	Quota       = api.Quota
	Usage       = api.Usage
	Token       = api.Token
	NewToken    = api.NewToken
	AuditEntry  = api.AuditEntry
	UsageRecord = api.UsageRecord
	Bill        = api.Bill
	BillLine    = api.BillLine
)

func whoAmI(ctx context.Context, c *client.Client) (WhoAmI, error) { return c.WhoAmI(ctx) }

// createSession trades a one-time sign-in link's code for a token.
func createSession(ctx context.Context, c *client.Client, code string) (NewToken, error) {
	return c.Redeem(ctx, code)
}

// endSession revokes the token the session signed in with. The admin
// token cannot be revoked (400): signing out then only clears the cookie.
func endSession(ctx context.Context, c *client.Client) error {
	err := c.EndSession(ctx)
	if errors.Is(err, api.ErrInvalid) {
		return nil
	}
	return err
}

func tenant(ctx context.Context, c *client.Client, name string) (Tenant, error) {
	return c.Tenant(ctx, name)
}

func tenants(ctx context.Context, c *client.Client) ([]Tenant, error) { return c.Tenants(ctx) }

func createTenant(ctx context.Context, c *client.Client, name string) error {
	_, err := c.CreateTenant(ctx, api.CreateTenant{Name: name})
	return err
}

// setQuota replaces the quota fields given; unlimited names fields to lift.
func setQuota(ctx context.Context, c *client.Client, name string, q Quota, unlimited []string) error {
	_, err := c.SetQuota(ctx, name, api.SetQuota{Quota: q, Unlimited: unlimited})
	return err
}

func tokens(ctx context.Context, c *client.Client) ([]Token, error) { return c.Tokens(ctx) }

func createToken(ctx context.Context, c *client.Client, tenant, role, description, expires string) (NewToken, error) {
	return c.CreateToken(ctx, api.CreateToken{Tenant: tenant, Role: role, Description: description, Expires: expires})
}

func deleteToken(ctx context.Context, c *client.Client, id string) error {
	_, err := c.RevokeToken(ctx, id)
	return err
}

func auditLog(ctx context.Context, c *client.Client) ([]AuditEntry, error) { return c.Audit(ctx, nil) }

// usage is a tenant's usage records from the start of month to its end.
func usage(ctx context.Context, c *client.Client, tenant string, month time.Time) ([]UsageRecord, error) {
	return c.Usage(ctx, tenant, month.Format(time.RFC3339), month.AddDate(0, 1, 0).Format(time.RFC3339))
}

func bill(ctx context.Context, c *client.Client, tenant string, month time.Time) (Bill, error) {
	return c.Bill(ctx, tenant, month.Format("2006-01"))
}
