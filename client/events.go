package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"github.com/weftcloud/weft/api"
)

// Events returns the events the controller kept with a sequence number
// above since.
func (c *Client) Events(ctx context.Context, since uint64) ([]api.Event, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	var list []api.Event
	_, err := c.Do(ctx, "GET", "/v1/events", q, nil, &list)
	return list, err
}

// FollowEvents calls fn for every event above since, then for each new one as
// it happens, until ctx ends (it then returns ctx.Err()), the stream breaks,
// or fn returns an error (which it returns).
func (c *Client) FollowEvents(ctx context.Context, since uint64, fn func(api.Event) error) error {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}, "follow": {"1"}}
	resp, err := c.Stream(ctx, "GET", "/v1/events", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var e api.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("client: events: decode %q: %w", line, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("client: events: %w", err)
	}
	return fmt.Errorf("client: events: the controller closed the stream")
}
