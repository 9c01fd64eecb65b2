package blob

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/weftcloud/weft/internal/storage/boltlog"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// TestStagedBlocksAcrossRestart stages blocks, whose files are not fsynced
// until Put Block List, then restarts the service: a clean Close syncs them
// and they can still be committed; after a crash they are dropped (they may
// be torn) and the commit fails instead of making a blob of them.
func TestStagedBlocksAcrossRestart(t *testing.T) {
	tests := []struct {
		name  string
		crash bool
	}{
		{"clean close keeps them", false},
		{"crash drops them", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			open := func() (*Service, *azblob.Client) {
				t.Helper()
				svc, err := Open(dir, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = svc.Close() })
				ep := storagetest.Serve(t, storage.Blob, svc)
				client, err := azblob.NewClientFromConnectionString(storagetest.ConnectionString(ep, "", ""), nil)
				if err != nil {
					t.Fatal(err)
				}
				return svc, client
			}
			blockBlob := func(c *azblob.Client) *blockblob.Client {
				return c.ServiceClient().NewContainerClient("staged").NewBlockBlobClient("b")
			}
			svc, client := open()
			if _, err := client.CreateContainer(ctx, "staged", nil); err != nil {
				t.Fatal(err)
			}
			bb := blockBlob(client)
			parts := [][]byte{randBytes(200<<10, 1), randBytes(300<<10, 2)}
			ids := []string{blockID(0), blockID(1)}
			for i, p := range parts {
				if _, err := bb.StageBlock(ctx, ids[i], streaming.NopCloser(bytes.NewReader(p)), nil); err != nil {
					t.Fatal(err)
				}
			}
			if n := volatileBlocks(t, svc); n != 2 {
				t.Fatalf("%d volatile staged blocks, want 2", n)
			}
			if tc.crash {
				// Stop without Close's settling, as kill -9 would.
				svc.once.Do(func() {
					close(svc.closed)
					svc.wg.Wait()
					_ = svc.db.Close()
				})
			} else if err := svc.Close(); err != nil {
				t.Fatal(err)
			}

			svc, client = open()
			bb = blockBlob(client)
			_, err := bb.CommitBlockList(ctx, ids, nil)
			if tc.crash {
				if !bloberror.HasCode(err, bloberror.InvalidBlockList) {
					t.Fatalf("commit after crash: %v, want InvalidBlockList", err)
				}
				if _, err := client.DeleteContainer(ctx, "staged", nil); err != nil {
					t.Fatal(err)
				}
				assertNoData(t, svc)
				return
			}
			if err != nil {
				t.Fatalf("commit after clean restart: %v", err)
			}
			if n := volatileBlocks(t, svc); n != 0 {
				t.Errorf("%d volatile blocks after commit", n)
			}
			resp, err := bb.DownloadStream(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append(append([]byte(nil), parts[0]...), parts[1]...)) {
				t.Error("committed blob differs from the staged blocks")
			}
		})
	}
}

func volatileBlocks(t *testing.T, s *Service) int {
	t.Helper()
	n := 0
	err := s.view(func(tx *boltlog.Tx) error {
		return tx.Bucket(bktBlocks).ForEach(func(k, v []byte) error {
			var b blockRec
			if err := json.Unmarshal(v, &b); err != nil {
				return err
			}
			if b.Volatile {
				n++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
