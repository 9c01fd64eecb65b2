package client

import (
	"context"
	"io"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// UploadPackage streams a role package (a tar.gz) to the controller and
// returns its content address. Uploading the same bytes twice is harmless.
func (c *Client) UploadPackage(ctx context.Context, r io.Reader) (api.Package, error) {
	var p api.Package
	_, err := c.Do(ctx, "POST", "/v1/packages", nil, r, &p)
	return p, err
}

// Deploy creates the service, or upgrades it when the spec changed. The
// spec's process roles must name uploaded packages ("sha256:...").
func (c *Client) Deploy(ctx context.Context, spec api.ServiceSpec) (api.Service, error) {
	var s api.Service
	_, err := c.Do(ctx, "PUT", servicePath(spec.Name), nil, spec, &s)
	return s, err
}

// Plan says what Deploy(spec) would change, changing nothing; it refuses
// what Deploy would refuse, with the same error.
func (c *Client) Plan(ctx context.Context, spec api.ServiceSpec) (api.Plan, error) {
	var p api.Plan
	_, err := c.Do(ctx, "POST", servicePath(spec.Name)+"/plan", nil, spec, &p)
	return p, err
}

// Services lists every service.
func (c *Client) Services(ctx context.Context) ([]api.Service, error) {
	return listAll[api.Service](ctx, c, "/v1/services", nil)
}

// Service returns one service; a missing one is an api not_found error.
func (c *Client) Service(ctx context.Context, name string) (api.Service, error) {
	var s api.Service
	_, err := c.Do(ctx, "GET", servicePath(name), nil, nil, &s)
	return s, err
}

// DeleteService starts deleting a service: it answers the service with
// status deleting; the service is gone once its instances stopped, and
// the drives of its slots with it.
func (c *Client) DeleteService(ctx context.Context, name string) (api.Service, error) {
	var s api.Service
	_, err := c.Do(ctx, "DELETE", servicePath(name), nil, nil, &s)
	return s, err
}

// DeleteServiceKeepingDrives deletes a service as DeleteService does but
// keeps the drives of its slots (weft drive list shows them).
func (c *Client) DeleteServiceKeepingDrives(ctx context.Context, name string) (api.Service, error) {
	var s api.Service
	_, err := c.Do(ctx, "DELETE", servicePath(name), url.Values{"keepDrives": {"true"}}, nil, &s)
	return s, err
}

// Scale sets the instance count of one role of a service.
func (c *Client) Scale(ctx context.Context, service, role string, n int) (api.Service, error) {
	var s api.Service
	_, err := c.Do(ctx, "POST", servicePath(service)+"/scale", nil, api.ScaleRequest{Role: role, Instances: n}, &s)
	return s, err
}

// Rollback returns a service to the version before its last upgrade.
func (c *Client) Rollback(ctx context.Context, name string) (api.Service, error) {
	var s api.Service
	_, err := c.Do(ctx, "POST", servicePath(name)+"/rollback", nil, nil, &s)
	return s, err
}

// Status describes the controller that answered.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var s api.Status
	_, err := c.Do(ctx, "GET", "/v1/status", nil, nil, &s)
	return s, err
}

func servicePath(name string) string { return "/v1/services/" + url.PathEscape(name) }
