package client

import (
	"context"
	"io"
	"net/url"
	"strconv"

	"github.com/weftcloud/weft/api"
)

// Instances lists the instances of one service, or of every service when
// service is empty.
func (c *Client) Instances(ctx context.Context, service string) ([]api.Instance, error) {
	var q url.Values
	if service != "" {
		q = url.Values{"service": {service}}
	}
	return listAll[api.Instance](ctx, c, "/v1/instances", q)
}

// Instance returns one instance by id.
func (c *Client) Instance(ctx context.Context, id string) (api.Instance, error) {
	var in api.Instance
	_, err := c.Do(ctx, "GET", "/v1/instances/"+url.PathEscape(id), nil, nil, &in)
	return in, err
}

// Reimage starts an ephemeral instance again from its package or image,
// throwing away what it wrote.
func (c *Client) Reimage(ctx context.Context, id string) (api.Instance, error) {
	var in api.Instance
	_, err := c.Do(ctx, "POST", "/v1/instances/"+url.PathEscape(id)+"/reimage", nil, nil, &in)
	return in, err
}

// Logs opens an instance's output: the last tail bytes' worth of lines
// (tail <= 0: what the node kept), and with follow what it writes next,
// until ctx ends. The caller closes the stream.
func (c *Client) Logs(ctx context.Context, id string, tail int64, follow bool) (io.ReadCloser, error) {
	q := url.Values{}
	if tail > 0 {
		q.Set("tail", strconv.FormatInt(tail, 10))
	}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.Stream(ctx, "GET", "/v1/instances/"+url.PathEscape(id)+"/logs", q, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
