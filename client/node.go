package client

import (
	"context"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/weftcloud/weft/api"
)

// The node protocol, used by `weft agent` (see api/node.go).

// RegisterNode records the node with the controller.
func (c *Client) RegisterNode(ctx context.Context, reg api.NodeRegistration) (api.Node, error) {
	var n api.Node
	_, err := c.Do(ctx, "PUT", "/v1/nodes/"+url.PathEscape(reg.Name), nil, reg, &n)
	return n, err
}

// Heartbeat reports the node's instances and events.
func (c *Client) Heartbeat(ctx context.Context, node string, hb api.Heartbeat) (api.HeartbeatReply, error) {
	var r api.HeartbeatReply
	_, err := c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(node)+"/heartbeat", nil, hb, &r)
	return r, err
}

// ScheduledEventAction forwards an instance's answer to its scheduled
// event (the node's agent, for an instance on the node).
func (c *Client) ScheduledEventAction(ctx context.Context, node string, act api.ScheduledEventAction) (api.ScheduledEvent, error) {
	var ev api.ScheduledEvent
	_, err := c.Do(ctx, "POST", "/v1/nodes/"+url.PathEscape(node)+"/scheduledevents", nil, act, &ev)
	return ev, err
}

// Assignments returns what the node must run; with index > 0 it waits up
// to wait for a change past index (a blocking query).
func (c *Client) Assignments(ctx context.Context, node string, index uint64, wait time.Duration) (api.Assignments, error) {
	q := url.Values{}
	if index > 0 {
		q.Set("index", strconv.FormatUint(index, 10))
		q.Set("wait", wait.String())
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait+10*time.Second)
		defer cancel()
	}
	var a api.Assignments
	_, err := c.Do(ctx, "GET", "/v1/nodes/"+url.PathEscape(node)+"/assignments", q, nil, &a)
	return a, err
}

// Peers returns the peers of one of node's instances: its role's
// instances, itself included (Assignment.PeersVersion).
func (c *Client) Peers(ctx context.Context, node, instance string) ([]api.Peer, error) {
	var peers []api.Peer
	_, err := c.Do(ctx, "GET", "/v1/nodes/"+url.PathEscape(node)+"/peers/"+url.PathEscape(instance), nil, nil, &peers)
	return peers, err
}

// Package downloads a role package; the caller closes it.
func (c *Client) Package(ctx context.Context, digest string) (io.ReadCloser, error) {
	resp, err := c.Stream(ctx, "GET", "/v1/packages/"+url.PathEscape(digest), nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
