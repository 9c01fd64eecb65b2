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
