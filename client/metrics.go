package client

import (
	"context"
	"io"
)

// Metrics opens the server's GET /metrics: its figures in the Prometheus
// text format (the operator's, or the servers'). The caller closes it.
func (c *Client) Metrics(ctx context.Context) (io.ReadCloser, error) {
	resp, err := c.Stream(ctx, "GET", "/metrics", nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
