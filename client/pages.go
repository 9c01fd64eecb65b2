package client

import (
	"context"
	"net/url"
	"strconv"
	"strings"
)

// pageSize is how many objects a list asks the server for at once.
var pageSize = 1000

// listAll gets every page of a list route (?limit=&after=), following the
// Link header of each answer to the next. A server that does not page
// answers the whole list at once, without a Link.
func listAll[T any](ctx context.Context, c *Client, path string, query url.Values) ([]T, error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("limit", strconv.Itoa(pageSize))
	all := []T{}
	for {
		var page []T
		h, err := c.Do(ctx, "GET", path, q, nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		after, ok := nextAfter(h.Get("Link"))
		if !ok || len(page) == 0 {
			return all, nil
		}
		q.Set("after", after)
	}
}

// nextAfter reads the after= of a Link header's rel="next" URL.
func nextAfter(link string) (string, bool) {
	for _, part := range strings.Split(link, ",") {
		target, params, found := strings.Cut(strings.TrimSpace(part), ";")
		if !found || !strings.Contains(params, `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err != nil {
			return "", false
		}
		after := u.Query().Get("after")
		return after, after != ""
	}
	return "", false
}
