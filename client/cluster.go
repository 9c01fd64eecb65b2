package client

import (
	"context"
	"io"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// Members lists the controller servers of the cluster.
func (c *Client) Members(ctx context.Context) ([]api.Member, error) {
	var list []api.Member
	_, err := c.Do(ctx, "GET", "/v1/cluster/members", nil, nil, &list)
	return list, err
}

// RemovePeer removes a server from the cluster.
func (c *Client) RemovePeer(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", "/v1/cluster/members/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// SaveSnapshot writes a snapshot of the cluster's whole state to w.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) error {
	_, err := c.Do(ctx, "GET", "/v1/cluster/snapshot", nil, nil, w)
	return err
}

// RestoreSnapshot replaces the cluster's whole state with a snapshot.
func (c *Client) RestoreSnapshot(ctx context.Context, r io.Reader) error {
	_, err := c.Do(ctx, "POST", "/v1/cluster/snapshot", nil, r, nil)
	return err
}

// JoinCluster trades the cluster's join token (WithToken) for a
// certificate of the agent's own, signed by the cluster's CA.
func (c *Client) JoinCluster(ctx context.Context, req api.AgentCertificateRequest) (api.AgentCertificate, error) {
	var got api.AgentCertificate
	_, err := c.Do(ctx, "POST", "/v1/cluster/certificate", nil, req, &got)
	return got, err
}

// RenewCertificate asks for a new certificate for the agent whose
// certificate the client presents (WithTLS); req must name its node.
func (c *Client) RenewCertificate(ctx context.Context, req api.AgentCertificateRequest) (api.AgentCertificate, error) {
	var got api.AgentCertificate
	_, err := c.Do(ctx, "POST", "/v1/cluster/certificate/renew", nil, req, &got)
	return got, err
}

// RotateJoinToken makes a new join token, which every server accepts from
// then on instead of the old one; the answer is the only place it is seen.
func (c *Client) RotateJoinToken(ctx context.Context) (api.JoinToken, error) {
	var got api.JoinToken
	_, err := c.Do(ctx, "POST", "/v1/cluster/join-token", nil, nil, &got)
	return got, err
}
