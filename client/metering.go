package client

import (
	"context"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// Usage returns the hourly usage records of tenant ("" for every tenant)
// between from and to: RFC 3339 times or dates YYYY-MM-DD; empty for the
// server's defaults (the start of this month, now).
func (c *Client) Usage(ctx context.Context, tenant, from, to string) ([]api.UsageRecord, error) {
	q := url.Values{}
	for k, v := range map[string]string{"tenant": tenant, "from": from, "to": to} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var list []api.UsageRecord
	_, err := c.Do(ctx, "GET", "/v1/usage", q, nil, &list)
	return list, err
}

// Bill returns tenant's bill for month (YYYY-MM) under the current rate card.
func (c *Client) Bill(ctx context.Context, tenant, month string) (api.Bill, error) {
	var b api.Bill
	_, err := c.Do(ctx, "GET", "/v1/bills", url.Values{"tenant": {tenant}, "month": {month}}, nil, &b)
	return b, err
}

// RateCard returns the rate card; api.ErrNotFound when none is set.
func (c *Client) RateCard(ctx context.Context) (api.RateCard, error) {
	var card api.RateCard
	_, err := c.Do(ctx, "GET", "/v1/ratecard", nil, nil, &card)
	return card, err
}

// SetRateCard replaces the rate card.
func (c *Client) SetRateCard(ctx context.Context, card api.RateCard) (api.RateCard, error) {
	var out api.RateCard
	_, err := c.Do(ctx, "PUT", "/v1/ratecard", nil, card, &out)
	return out, err
}
