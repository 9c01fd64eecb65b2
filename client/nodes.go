package client

import (
	"context"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// Nodes lists the registered nodes.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var list []api.Node
	_, err := c.Do(ctx, "GET", "/v1/nodes", nil, nil, &list)
	return list, err
}

// Node returns one node by name.
func (c *Client) Node(ctx context.Context, name string) (api.Node, error) {
	var n api.Node
	_, err := c.Do(ctx, "GET", nodePath(name), nil, nil, &n)
	return n, err
}

// DrainNode marks a node draining: the fabric moves its instances elsewhere
// and places nothing new on it.
func (c *Client) DrainNode(ctx context.Context, name string) (api.Node, error) {
	var n api.Node
	_, err := c.Do(ctx, "POST", nodePath(name)+"/drain", nil, nil, &n)
	return n, err
}

// UndrainNode makes a drained node eligible for placement again.
func (c *Client) UndrainNode(ctx context.Context, name string) (api.Node, error) {
	var n api.Node
	_, err := c.Do(ctx, "POST", nodePath(name)+"/undrain", nil, nil, &n)
	return n, err
}

// RevokeNode revokes the node's certificates issued until now: the
// servers refuse them, and the node joins again with the join token.
func (c *Client) RevokeNode(ctx context.Context, name string) (api.Node, error) {
	var n api.Node
	_, err := c.Do(ctx, "POST", nodePath(name)+"/revoke", nil, nil, &n)
	return n, err
}

func nodePath(name string) string { return "/v1/nodes/" + url.PathEscape(name) }
