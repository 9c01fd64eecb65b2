package client

import (
	"context"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// CreateDrive makes a drive, empty or from a snapshot.
func (c *Client) CreateDrive(ctx context.Context, req api.CreateDrive) (api.Drive, error) {
	var d api.Drive
	_, err := c.Do(ctx, "POST", "/v1/drives", nil, req, &d)
	return d, err
}

// Drives lists the drives.
func (c *Client) Drives(ctx context.Context) ([]api.Drive, error) {
	return listAll[api.Drive](ctx, c, "/v1/drives", nil)
}

// Drive returns one drive.
func (c *Client) Drive(ctx context.Context, name string) (api.Drive, error) {
	var d api.Drive
	_, err := c.Do(ctx, "GET", drivePath(name), nil, nil, &d)
	return d, err
}

// SnapshotDrive takes a snapshot of a drive.
func (c *Client) SnapshotDrive(ctx context.Context, name string) (api.DriveSnapshot, error) {
	var s api.DriveSnapshot
	_, err := c.Do(ctx, "POST", drivePath(name)+"/snapshots", nil, nil, &s)
	return s, err
}

// DeleteDrive deletes a drive with its snapshots.
func (c *Client) DeleteDrive(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", drivePath(name), nil, nil, nil)
	return err
}

func drivePath(name string) string { return "/v1/drives/" + url.PathEscape(name) }
