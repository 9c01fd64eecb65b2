package client

import (
	"context"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// CreateNetwork makes a virtual network.
func (c *Client) CreateNetwork(ctx context.Context, req api.CreateNetwork) (api.Network, error) {
	var n api.Network
	_, err := c.Do(ctx, "POST", "/v1/networks", nil, req, &n)
	return n, err
}

// Networks lists the virtual networks.
func (c *Client) Networks(ctx context.Context) ([]api.Network, error) {
	var list []api.Network
	_, err := c.Do(ctx, "GET", "/v1/networks", nil, nil, &list)
	return list, err
}

// Network returns one virtual network.
func (c *Client) Network(ctx context.Context, name string) (api.Network, error) {
	var n api.Network
	_, err := c.Do(ctx, "GET", networkPath(name), nil, nil, &n)
	return n, err
}

// DeleteNetwork deletes a virtual network nothing uses.
func (c *Client) DeleteNetwork(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", networkPath(name), nil, nil, nil)
	return err
}

func networkPath(name string) string { return "/v1/networks/" + url.PathEscape(name) }
