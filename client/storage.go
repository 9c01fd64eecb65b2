package client

import (
	"context"
	"net/url"

	"github.com/weftcloud/weft/api"
)

// CreateStorageAccount creates an account of the storage service.
func (c *Client) CreateStorageAccount(ctx context.Context, name string) (api.StorageAccount, error) {
	var a api.StorageAccount
	_, err := c.Do(ctx, "POST", "/v1/storage/accounts", nil, api.CreateStorageAccount{Name: name}, &a)
	return a, err
}

// StorageAccounts lists the storage accounts.
func (c *Client) StorageAccounts(ctx context.Context) ([]api.StorageAccount, error) {
	return listAll[api.StorageAccount](ctx, c, "/v1/storage/accounts", nil)
}

// StorageAccountKeys returns an account's two keys and a connection string.
func (c *Client) StorageAccountKeys(ctx context.Context, name string) (api.StorageAccountKeys, error) {
	var k api.StorageAccountKeys
	_, err := c.Do(ctx, "GET", accountPath(name)+"/keys", nil, nil, &k)
	return k, err
}

// RegenerateStorageAccountKey replaces key ("key1" or "key2") with a new one.
func (c *Client) RegenerateStorageAccountKey(ctx context.Context, name, key string) (api.StorageAccountKeys, error) {
	var k api.StorageAccountKeys
	_, err := c.Do(ctx, "POST", accountPath(name)+"/keys/"+url.PathEscape(key)+"/regenerate", nil, nil, &k)
	return k, err
}

// DeleteStorageAccount deletes an account and its data.
func (c *Client) DeleteStorageAccount(ctx context.Context, name string) error {
	_, err := c.Do(ctx, "DELETE", accountPath(name), nil, nil, nil)
	return err
}

func accountPath(name string) string { return "/v1/storage/accounts/" + url.PathEscape(name) }

// StoragePlacement returns where the storage service's data lives: the
// primary, the in-sync set and epoch, and every registered storage
// member, read from the leader. Before the first primary is chosen, or
// when no server runs the storage service, its Config.Epoch is 0.
func (c *Client) StoragePlacement(ctx context.Context) (api.StoragePlacement, error) {
	var p api.StoragePlacement
	_, err := c.Do(ctx, "GET", "/v1/storage/config", nil, nil, &p)
	return p, err
}

// RegisterStorageMember records m as a server that runs the storage
// service (a server registers itself).
func (c *Client) RegisterStorageMember(ctx context.Context, m api.StorageMember) error {
	_, err := c.Do(ctx, "POST", "/v1/storage/members", nil, m, nil)
	return err
}

// AddInSync adds name to the in-sync set of epoch. A stale epoch is an
// api.ErrConflict.
func (c *Client) AddInSync(ctx context.Context, epoch uint64, name string) error {
	return c.changeInSync(ctx, api.StorageInSyncChange{Epoch: epoch, Name: name, Op: "add"})
}

// DropInSync removes name from the in-sync set of epoch. A stale epoch is
// an api.ErrConflict.
func (c *Client) DropInSync(ctx context.Context, epoch uint64, name string) error {
	return c.changeInSync(ctx, api.StorageInSyncChange{Epoch: epoch, Name: name, Op: "drop"})
}

// RestartInSync starts a new epoch with name, the primary of epoch, alone
// in its in-sync set. A stale epoch is an api.ErrConflict.
func (c *Client) RestartInSync(ctx context.Context, epoch uint64, name string) error {
	return c.changeInSync(ctx, api.StorageInSyncChange{Epoch: epoch, Name: name, Op: "restart"})
}

func (c *Client) changeInSync(ctx context.Context, change api.StorageInSyncChange) error {
	_, err := c.Do(ctx, "POST", "/v1/storage/insync", nil, change, nil)
	return err
}
