package client

import (
	"context"

	"github.com/weftcloud/weft/api"
)

// CreateVPN makes a network's VPN gateway; the answer's PeerConfig is the
// configuration for the peer on premises.
func (c *Client) CreateVPN(ctx context.Context, network string, req api.CreateVPN) (api.VPN, error) {
	var v api.VPN
	_, err := c.Do(ctx, "POST", networkPath(network)+"/vpn", nil, req, &v)
	return v, err
}

// VPNs lists the VPN gateways.
func (c *Client) VPNs(ctx context.Context) ([]api.VPN, error) {
	var list []api.VPN
	_, err := c.Do(ctx, "GET", "/v1/vpns", nil, nil, &list)
	return list, err
}

// VPN returns a network's VPN gateway.
func (c *Client) VPN(ctx context.Context, network string) (api.VPN, error) {
	var v api.VPN
	_, err := c.Do(ctx, "GET", networkPath(network)+"/vpn", nil, nil, &v)
	return v, err
}

// DeleteVPN deletes a network's VPN gateway.
func (c *Client) DeleteVPN(ctx context.Context, network string) error {
	_, err := c.Do(ctx, "DELETE", networkPath(network)+"/vpn", nil, nil, nil)
	return err
}
