// Package client is the Go SDK for Weft's REST API. The CLI, the portal, the
// node agent and the end-to-end tests all talk to the controller through it.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
)

// DefaultAddr is where `weft dev` and `weft server` listen by default.
const DefaultAddr = "http://127.0.0.1:7070"

// Client calls one or more controllers. With several addresses it sticks to
// the last one that answered and moves on to the next when one cannot be
// reached.
type Client struct {
	addrs []string
	http  *http.Client
	token string // sent as Authorization: Bearer
	// tenant, when set, is sent as ?tenant= on every call: the tenant the
	// operator acts in (a tenant's own token needs none).
	tenant string

	mu      sync.Mutex
	current int
}

// New returns a client for a comma-separated list of controller addresses
// ("http://host:port"); an empty list means DefaultAddr.
func New(addrs string) *Client {
	list := splitAddrs(addrs)
	if len(list) == 0 {
		list = []string{DefaultAddr}
	}
	return &Client{addrs: list, http: &http.Client{}}
}

// WithTLS makes the client use config for https:// addresses: the
// cluster's CA to check servers against and, for agents, a certificate.
func (c *Client) WithTLS(config *tls.Config) *Client {
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: config, Proxy: http.ProxyFromEnvironment}}
	return c
}

// WithTenant makes every call act in tenant (the operator's --tenant), or
// with api.AllTenants list every tenant's objects.
func (c *Client) WithTenant(tenant string) *Client {
	c.tenant = tenant
	return c
}

// WithTransport makes the client send its requests through rt: the portal
// calls the API of the server it runs in without a network round trip.
func (c *Client) WithTransport(rt http.RoundTripper) *Client {
	c.http = &http.Client{Transport: rt}
	return c
}

// CloseIdleConnections closes the kept-alive connections not in use: an
// agent whose certificate was renewed presents the new one on the next.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// splitAddrs is a comma-separated list of addresses, each normalized.
func splitAddrs(addrs string) []string {
	var list []string
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			list = append(list, normalize(a))
		}
	}
	return list
}

// normalize is an API address as the client keeps it: with its scheme
// (http:// when none), without a trailing slash.
func normalize(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}

// tokenFor is the token to present to addr: the client's, or else the one
// kept for addr in TokensFile.
func (c *Client) tokenFor(addr string) string {
	if c.token != "" {
		return c.token
	}
	return SavedToken(addr)
}

// WithToken makes the client present token (an API token) as a bearer
// token; without one, it presents the token TokensFile keeps for the
// address it calls, if any.
func (c *Client) WithToken(token string) *Client {
	c.token = token
	return c
}

// Addrs returns the controller addresses the client knows.
func (c *Client) Addrs() []string { return append([]string(nil), c.addrs...) }

// Do sends a request with an optional JSON (or io.Reader) body and decodes a
// JSON answer into out when out is not nil. An error answer becomes an
// *api.Error. Blocking-query callers read the index from the returned header.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) (http.Header, error) {
	resp, err := c.Stream(ctx, method, path, query, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if out != nil {
		if w, ok := out.(io.Writer); ok {
			_, err = io.Copy(w, resp.Body)
		} else {
			err = json.NewDecoder(resp.Body).Decode(out)
		}
		if err != nil {
			return resp.Header, fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// Stream sends a request and returns the open answer for the caller to read
// (logs, event streams, package downloads). The caller closes the body.
// Answers with an error status are turned into errors here.
func (c *Client) Stream(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	if c.tenant != "" && query.Get("tenant") == "" {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("tenant", c.tenant)
		query = q
	}
	var payload []byte
	var reader io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		reader = b // streamed once: no failover for readers
		contentType = "application/octet-stream"
	default:
		var err error
		if payload, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
		contentType = "application/json"
	}
	// A cluster without a leader (an election, a restore) answers 503 with
	// Retry-After for a moment: try the other servers, then again, for a
	// few seconds (send says which answers may be asked again).
	deadline := time.Now().Add(unavailableRetry)
	for {
		resp, err := c.send(ctx, method, path, query, reader, payload, contentType)
		if !errors.Is(err, errRetry) {
			return resp, err
		}
		err = errors.Unwrap(err)
		if reader != nil || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// errRetry marks an answer worth asking again shortly.
var errRetry = errors.New("retry")

type retryable struct{ err error }

func (r retryable) Error() string        { return r.err.Error() }
func (r retryable) Is(target error) bool { return target == errRetry }
func (r retryable) Unwrap() error        { return r.err }

// unavailableRetry is how long requests are retried while the controller
// answers that it is unavailable. Elections on a starved machine can leave
// a cluster without a leader for longer than a few seconds (11 s seen in a
// loaded make test, where 10 s of retries made weft vm create fail
// half-way); a command that waits is better than one that stops mid-way.
const unavailableRetry = 30 * time.Second

// send tries each controller address once, starting with the last one
// that answered.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, reader io.Reader, payload []byte, contentType string) (*http.Response, error) {
	c.mu.Lock()
	start := c.current
	c.mu.Unlock()
	var lastErr error
	var answer error
	for i := range c.addrs {
		n := (start + i) % len(c.addrs)
		u := c.addrs[n] + path
		if len(query) > 0 {
			u += "?" + query.Encode()
		}
		r := reader
		if payload != nil {
			r = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, r)
		if err != nil {
			return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if tok := c.tokenFor(c.addrs[n]); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = err
			// A request that reached a server may have been carried out:
			// only an idempotent one is sent to the next.
			if ctx.Err() != nil || reader != nil || !idempotent(method) && !notSent(err) {
				break
			}
			continue
		}
		c.mu.Lock()
		c.current = n
		c.mu.Unlock()
		if resp.StatusCode >= 300 {
			err := decodeError(resp)
			resp.Body.Close()
			if mayRepeat(method, resp) && reader == nil {
				answer = err // passing: another server may do better
				continue
			}
			return nil, err
		}
		return resp, nil
	}
	if answer != nil {
		return nil, retryable{answer}
	}
	return nil, fmt.Errorf("cannot reach the controller at %s: %w", strings.Join(c.addrs, ","), lastErr)
}

// mayRepeat reports whether the request an error answer resp refused may
// be sent again: a 503 with Retry-After is a server that could not take
// it (no leader yet, or not the leader), unless it says that the outcome
// is unknown (api.HeaderOutcome), when the request may have taken effect
// and only an idempotent one is repeated. A deploy is a PUT of the whole
// model: deploying the model again once it is in changes nothing.
func mayRepeat(method string, resp *http.Response) bool {
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		return false
	}
	return resp.Header.Get(api.HeaderOutcome) != api.OutcomeUnknown || idempotent(method)
}

// idempotent reports whether sending a request with method twice has the
// effect of sending it once (RFC 9110, section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// notSent reports whether err, from sending a request, means that no
// server got it: the connection was never made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body api.ErrorBody
	if err := json.Unmarshal(data, &body); err == nil && body.Error.Code != "" {
		return &body.Error
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = resp.Status
	}
	return &api.Error{Code: api.CodeFor(resp.StatusCode), Message: msg}
}

// IsNotFound reports whether err is an api not_found error.
func IsNotFound(err error) bool { return errors.Is(err, api.ErrNotFound) }
