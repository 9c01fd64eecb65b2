// Package blobclient is the little of the Azure blob REST API that Weft's
// own components need to keep their files in Weft's storage service: a
// container, whole-blob put and get (with ranges), exists, list and delete,
// signed with Shared Key. Users' programs use the official Azure SDKs instead.
package blobclient

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// ErrNotFound is returned for a blob or container that does not exist.
var ErrNotFound = errors.New("blobclient: not found")

// ErrExists is returned by Put with IfNoneExists when the blob exists.
var ErrExists = errors.New("blobclient: blob exists")

// Client talks to one account of a blob service.
type Client struct {
	endpoint string // http://host:port/account (path-style)
	// others are other servers' endpoints of the same replicated storage,
	// tried in turn when the current one cannot be reached.
	others  []string
	account string
	key     []byte     // Shared Key, or
	sas     url.Values // a SAS that every request carries instead
	http    *http.Client
}

// New returns a client for account at the blob service's base URL
// (e.g. http://127.0.0.1:10000), signing with key.
func New(baseURL, account string, key []byte) *Client {
	return &Client{
		endpoint: strings.TrimRight(baseURL, "/") + "/" + account,
		account:  account, key: key, http: &http.Client{},
	}
}

// NewSAS returns a client that authorizes with a SAS query (from
// storage.BlobSAS) instead of a key: it can do what the SAS grants.
func NewSAS(baseURL, account string, sas url.Values) *Client {
	c := New(baseURL, account, nil)
	c.sas = sas
	return c
}

// WithFallbacks returns a client that, when the server at its base URL
// cannot be reached, turns to the others (base URLs of other servers of
// the same replicated storage).
func (c *Client) WithFallbacks(baseURLs ...string) *Client {
	cp := *c
	cp.others = nil
	for _, u := range baseURLs {
		if e := strings.TrimRight(u, "/") + "/" + c.account; e != c.endpoint {
			cp.others = append(cp.others, e)
		}
	}
	return &cp
}

// retryFor is how long a request is retried while the storage is busy
// (503: its primary is changing servers) or a server cannot be reached:
// longer than the storage takes to replace a lost primary.
const retryFor = time.Minute

// do sends a request, retrying it (at the other servers too) while the
// storage is busy or unreachable, as long as its body can be sent again.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, size int64, h http.Header) (*http.Response, error) {
	seeker, rewindable := body.(io.Seeker)
	rewindable = rewindable || body == nil
	deadline := time.Now().Add(retryFor)
	endpoints := append([]string{c.endpoint}, c.others...)
	for attempt := 0; ; attempt++ {
		endpoint := endpoints[attempt%len(endpoints)]
		if attempt > 0 && seeker != nil {
			if _, err := seeker.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("blobclient: %w", err)
			}
		}
		resp, err := c.send(ctx, endpoint, method, path, body, size, h)
		busy := err == nil && resp.StatusCode == http.StatusServiceUnavailable
		if (err == nil && !busy) || !rewindable || ctx.Err() != nil || time.Now().After(deadline) {
			return resp, err
		}
		if busy {
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(time.Duration(attempt+1)*100*time.Millisecond, time.Second)):
		}
	}
}

func (c *Client) send(ctx context.Context, endpoint, method, path string, body io.Reader, size int64, h http.Header) (*http.Response, error) {
	target := endpoint + path
	if c.sas != nil {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		target += sep + c.sas.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("blobclient: %w", err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
	}
	if c.sas == nil {
		storage.SignSharedKey(req, storage.Blob, c.account, c.key)
	} else {
		req.Header.Set("x-ms-version", storage.SignVersion)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("blobclient: %s %s: %w", method, path, err)
	}
	return resp, nil
}

// failure turns an error answer into an error, closing its body.
func failure(resp *http.Response, what string) error {
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	code := resp.Header.Get("x-ms-error-code")
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%s: %w (%s)", what, ErrNotFound, code)
	case code == "BlobAlreadyExists" || (resp.StatusCode == http.StatusConflict && code == ""):
		return fmt.Errorf("%s: %w", what, ErrExists)
	}
	return fmt.Errorf("blobclient: %s: %s %s", what, resp.Status, code)
}

func blobPath(container, blob string) string {
	return "/" + container + "/" + (&url.URL{Path: blob}).EscapedPath()
}

// CreateContainer makes a private container; one that exists is not an error.
func (c *Client) CreateContainer(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodPut, "/"+name+"?restype=container", nil, 0, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusCreated || resp.Header.Get("x-ms-error-code") == "ContainerAlreadyExists" {
		resp.Body.Close()
		return nil
	}
	return failure(resp, "create container "+name)
}

// DeleteContainer removes a container and its blobs; a missing container
// is ErrNotFound.
func (c *Client) DeleteContainer(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodDelete, "/"+name+"?restype=container", nil, 0, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusAccepted {
		resp.Body.Close()
		return nil
	}
	return failure(resp, "delete container "+name)
}

// Containers returns the account's container names, in name order,
// following the service's pages.
func (c *Client) Containers(ctx context.Context) ([]string, error) {
	var out []string
	marker := ""
	for {
		q := url.Values{"comp": {"list"}}
		if marker != "" {
			q.Set("marker", marker)
		}
		resp, err := c.do(ctx, http.MethodGet, "/?"+q.Encode(), nil, 0, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, failure(resp, "list containers")
		}
		var page struct {
			Names      []string `xml:"Containers>Container>Name"`
			NextMarker string   `xml:"NextMarker"`
		}
		err = xml.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("blobclient: list containers: %w", err)
		}
		out = append(out, page.Names...)
		if page.NextMarker == "" {
			return out, nil
		}
		marker = page.NextMarker
	}
}

// PutOptions adjust Put.
type PutOptions struct {
	IfNoneExists bool // fail with ErrExists instead of replacing a blob
	ContentType  string
}

// Put stores size bytes from r as a block blob in one request (the service
// takes up to 5000 MiB that way), streamed: nothing is held in memory.
func (c *Client) Put(ctx context.Context, container, blob string, r io.Reader, size int64, opt PutOptions) error {
	h := http.Header{"X-Ms-Blob-Type": {"BlockBlob"}}
	if opt.IfNoneExists {
		h.Set("If-None-Match", "*")
	}
	if opt.ContentType != "" {
		h.Set("Content-Type", opt.ContentType)
	}
	if size == 0 {
		r = http.NoBody
	}
	resp, err := c.do(ctx, http.MethodPut, blobPath(container, blob), r, size, h)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusCreated {
		resp.Body.Close()
		return nil
	}
	if opt.IfNoneExists && (resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusPreconditionFailed) {
		resp.Body.Close()
		return fmt.Errorf("blobclient: put %s/%s: %w", container, blob, ErrExists)
	}
	return failure(resp, "put "+container+"/"+blob)
}

// Get opens a blob, or the byte range rng of it ("bytes=0-99"; "" for all).
// The caller closes the response body; its headers carry Content-Length,
// Content-Range and ETag as the service sent them.
func (c *Client) Get(ctx context.Context, container, blob, rng string) (*http.Response, error) {
	var h http.Header
	if rng != "" {
		h = http.Header{"Range": {rng}}
	}
	resp, err := c.do(ctx, http.MethodGet, blobPath(container, blob), nil, 0, h)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return nil, failure(resp, "get "+container+"/"+blob)
	}
	return resp, nil
}

// Size returns a blob's length, or ErrNotFound.
func (c *Client) Size(ctx context.Context, container, blob string) (int64, error) {
	resp, err := c.do(ctx, http.MethodHead, blobPath(container, blob), nil, 0, nil)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, failure(resp, "head "+container+"/"+blob)
	}
	resp.Body.Close()
	return resp.ContentLength, nil
}

// Delete removes a blob and its snapshots; a missing blob is not an error.
func (c *Client) Delete(ctx context.Context, container, blob string) error {
	resp, err := c.do(ctx, http.MethodDelete, blobPath(container, blob), nil, 0, http.Header{"X-Ms-Delete-Snapshots": {"include"}})
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil
	}
	return failure(resp, "delete "+container+"/"+blob)
}

// BlobInfo is a blob as List reports it.
type BlobInfo struct {
	Name         string
	Size         int64
	LastModified time.Time
}

// List returns the blobs of a container whose names start with prefix, in
// name order, following the service's pages.
func (c *Client) List(ctx context.Context, container, prefix string) ([]BlobInfo, error) {
	var out []BlobInfo
	marker := ""
	for {
		q := url.Values{"restype": {"container"}, "comp": {"list"}, "prefix": {prefix}}
		if marker != "" {
			q.Set("marker", marker)
		}
		resp, err := c.do(ctx, http.MethodGet, "/"+container+"?"+q.Encode(), nil, 0, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, failure(resp, "list "+container)
		}
		var page struct {
			Blobs []struct {
				Name         string `xml:"Name"`
				Size         int64  `xml:"Properties>Content-Length"`
				LastModified string `xml:"Properties>Last-Modified"`
			} `xml:"Blobs>Blob"`
			NextMarker string `xml:"NextMarker"`
		}
		err = xml.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("blobclient: list %s: %w", container, err)
		}
		for _, b := range page.Blobs {
			t, err := http.ParseTime(b.LastModified)
			if err != nil {
				return nil, fmt.Errorf("blobclient: list %s: %s: Last-Modified %q", container, b.Name, b.LastModified)
			}
			out = append(out, BlobInfo{Name: b.Name, Size: b.Size, LastModified: t})
		}
		if page.NextMarker == "" {
			return out, nil
		}
		marker = page.NextMarker
	}
}
