package client

import (
	"context"
	"io"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// PublishExtension uploads an extension archive (a package with
// extension.json at its root) and returns the published extension.
func (c *Client) PublishExtension(ctx context.Context, r io.Reader) (api.Extension, error) {
	var ext api.Extension
	_, err := c.Do(ctx, "POST", "/v1/extensions", nil, r, &ext)
	return ext, err
}

// Extensions lists the extensions the tenant may use: its own, the
// default tenant's and the built-in ones, every version.
func (c *Client) Extensions(ctx context.Context) ([]api.Extension, error) {
	var list []api.Extension
	_, err := c.Do(ctx, "GET", "/v1/extensions", nil, nil, &list)
	return list, err
}

// Extension returns one version of an extension, the newest when version
// is empty.
func (c *Client) Extension(ctx context.Context, name, version string) (api.Extension, error) {
	var ext api.Extension
	var q url.Values
	if version != "" {
		q = url.Values{"version": {version}}
	}
	_, err := c.Do(ctx, "GET", "/v1/extensions/"+url.PathEscape(name), q, nil, &ext)
	return ext, err
}
