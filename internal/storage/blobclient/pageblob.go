package blobclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// ErrLease is returned when a lease condition fails: another holder has the
// blob's lease, or the caller's lease was broken.
var ErrLease = errors.New("blobclient: lease held by another or lost")

// PageSize is the page blob's unit of writes.
const PageSize = 512

// MaxPutPages is the most one Put Page request carries.
const MaxPutPages = 4 << 20

func byteRange(off, n int64) string {
	return "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)
}

// expect checks an answer's status, turning lease failures into ErrLease.
func expect(resp *http.Response, want int, what string) error {
	if resp.StatusCode == want {
		resp.Body.Close()
		return nil
	}
	switch resp.Header.Get("x-ms-error-code") {
	case "LeaseIdMismatchWithBlobOperation", "LeaseLost", "LeaseIdMissing", "LeaseNotPresentWithBlobOperation",
		"LeaseAlreadyPresent", "LeaseIdMismatchWithLeaseOperation", "LeaseIsBrokenAndCannotBeRenewed",
		"LeaseNotPresentWithLeaseOperation", "LeaseIsBreakingAndCannotBeAcquired":
		resp.Body.Close()
		return fmt.Errorf("blobclient: %s: %w (%s)", what, ErrLease, resp.Header.Get("x-ms-error-code"))
	}
	return failure(resp, what)
}

// CreatePageBlob makes an empty page blob of size bytes (a multiple of 512),
// or fails with ErrExists if the blob is there.
func (c *Client) CreatePageBlob(ctx context.Context, container, blob string, size int64) error {
	h := http.Header{
		"X-Ms-Blob-Type": {"PageBlob"}, "X-Ms-Blob-Content-Length": {strconv.FormatInt(size, 10)},
		"If-None-Match": {"*"},
	}
	resp, err := c.do(ctx, http.MethodPut, blobPath(container, blob), nil, 0, h)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusPreconditionFailed {
		resp.Body.Close()
		return fmt.Errorf("blobclient: create %s/%s: %w", container, blob, ErrExists)
	}
	return expect(resp, http.StatusCreated, "create page blob "+container+"/"+blob)
}

// PutPages writes data (a multiple of 512 bytes, at most 4 MiB) at off (a
// multiple of 512), under lease when it is not "".
func (c *Client) PutPages(ctx context.Context, container, blob string, off int64, data []byte, lease string) error {
	h := http.Header{"X-Ms-Page-Write": {"update"}, "X-Ms-Range": {byteRange(off, int64(len(data)))}}
	if lease != "" {
		h.Set("X-Ms-Lease-Id", lease)
	}
	resp, err := c.do(ctx, http.MethodPut, blobPath(container, blob)+"?comp=page", bytes.NewReader(data), int64(len(data)), h)
	if err != nil {
		return err
	}
	return expect(resp, http.StatusCreated, "put pages")
}

// ClearPages makes n bytes at off read as zeros (both multiples of 512).
func (c *Client) ClearPages(ctx context.Context, container, blob string, off, n int64, lease string) error {
	h := http.Header{"X-Ms-Page-Write": {"clear"}, "X-Ms-Range": {byteRange(off, n)}}
	if lease != "" {
		h.Set("X-Ms-Lease-Id", lease)
	}
	resp, err := c.do(ctx, http.MethodPut, blobPath(container, blob)+"?comp=page", nil, 0, h)
	if err != nil {
		return err
	}
	return expect(resp, http.StatusCreated, "clear pages")
}

// AcquireLease takes the blob's lease with the given ID, for seconds (15-60)
// or forever (-1).
func (c *Client) AcquireLease(ctx context.Context, container, blob, id string, seconds int) error {
	return c.lease(ctx, container, blob, http.Header{
		"X-Ms-Lease-Action": {"acquire"}, "X-Ms-Proposed-Lease-Id": {id}, "X-Ms-Lease-Duration": {strconv.Itoa(seconds)},
	}, http.StatusCreated)
}

// RenewLease renews a lease this client holds.
func (c *Client) RenewLease(ctx context.Context, container, blob, id string) error {
	return c.lease(ctx, container, blob, http.Header{"X-Ms-Lease-Action": {"renew"}, "X-Ms-Lease-Id": {id}}, http.StatusOK)
}

// ReleaseLease gives a lease up.
func (c *Client) ReleaseLease(ctx context.Context, container, blob, id string) error {
	return c.lease(ctx, container, blob, http.Header{"X-Ms-Lease-Action": {"release"}, "X-Ms-Lease-Id": {id}}, http.StatusOK)
}

// BreakLease ends whatever lease the blob has, at once: the fence that keeps
// a node that lost contact from writing a disk another node now runs.
func (c *Client) BreakLease(ctx context.Context, container, blob string) error {
	err := c.lease(ctx, container, blob, http.Header{"X-Ms-Lease-Action": {"break"}, "X-Ms-Lease-Break-Period": {"0"}}, http.StatusAccepted)
	if err != nil && errors.Is(err, ErrLease) {
		return nil // no lease to break
	}
	return err
}

func (c *Client) lease(ctx context.Context, container, blob string, h http.Header, want int) error {
	resp, err := c.do(ctx, http.MethodPut, blobPath(container, blob)+"?comp=lease", nil, 0, h)
	if err != nil {
		return err
	}
	return expect(resp, want, h.Get("X-Ms-Lease-Action")+" lease on "+container+"/"+blob)
}

// Snapshot takes a read-only copy of the blob as it is now and returns its
// time, which names it (?snapshot=).
func (c *Client) Snapshot(ctx context.Context, container, blob string) (string, error) {
	resp, err := c.do(ctx, http.MethodPut, blobPath(container, blob)+"?comp=snapshot", nil, 0, nil)
	if err != nil {
		return "", err
	}
	snap := resp.Header.Get("x-ms-snapshot")
	if err := expect(resp, http.StatusCreated, "snapshot "+container+"/"+blob); err != nil {
		return "", err
	}
	return snap, nil
}

// CopyFrom makes blob a copy of srcBlob's snapshot snap (the blob itself
// when snap is "") in this account, with Copy Blob. This service finishes
// a copy before it answers; a copy still pending is an error here.
func (c *Client) CopyFrom(ctx context.Context, container, blob, srcContainer, srcBlob, snap string) error {
	src := c.endpoint + blobPath(srcContainer, srcBlob)
	if snap != "" {
		src += "?snapshot=" + url.QueryEscape(snap)
	}
	resp, err := c.do(ctx, http.MethodPut, blobPath(container, blob), nil, 0, http.Header{"X-Ms-Copy-Source": {src}, "If-None-Match": {"*"}})
	if err != nil {
		return err
	}
	status := resp.Header.Get("x-ms-copy-status")
	what := "copy " + srcContainer + "/" + srcBlob + " to " + container + "/" + blob
	if resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusPreconditionFailed {
		resp.Body.Close()
		return fmt.Errorf("blobclient: %s: %w", what, ErrExists)
	}
	if err := expect(resp, http.StatusAccepted, what); err != nil {
		return err
	}
	if status != "success" {
		return fmt.Errorf("blobclient: %s: the copy is %s, not done", what, status)
	}
	return nil
}
