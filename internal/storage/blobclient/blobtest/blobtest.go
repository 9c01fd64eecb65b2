// Package blobtest starts a real storage service for tests of the
// components that keep their files in it.
package blobtest

import (
	"encoding/base64"
	"testing"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// DevClient starts a storage service for the test and returns a client of
// its development account, signing with key (nil: the account's own).
func DevClient(t testing.TB, key []byte) *blobclient.Client {
	t.Helper()
	srv, err := storageserver.Start(storageserver.Config{Data: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if key == nil {
		key, _ = base64.StdEncoding.DecodeString(storage.DevKey)
	}
	return blobclient.New(srv.URL(storage.Blob), storage.DevAccount, key)
}
