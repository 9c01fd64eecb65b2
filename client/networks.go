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

// NetworkRules lists a virtual network's security rules, by priority.
func (c *Client) NetworkRules(ctx context.Context, network string) ([]api.NetworkRule, error) {
	var list []api.NetworkRule
	_, err := c.Do(ctx, "GET", networkPath(network)+"/rules", nil, nil, &list)
	return list, err
}

// AddNetworkRule adds a security rule to a virtual network and returns it
// as stored.
func (c *Client) AddNetworkRule(ctx context.Context, network string, rule api.NetworkRule) (api.NetworkRule, error) {
	var r api.NetworkRule
	_, err := c.Do(ctx, "POST", networkPath(network)+"/rules", nil, rule, &r)
	return r, err
}

// RemoveNetworkRule removes a virtual network's security rule.
func (c *Client) RemoveNetworkRule(ctx context.Context, network, rule string) error {
	_, err := c.Do(ctx, "DELETE", networkPath(network)+"/rules/"+url.PathEscape(rule), nil, nil, nil)
	return err
}
