package blob

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// TestBlobStateSurvivesRestart: the tag index is in the metadata database,
// so a restarted service finds what it found before, and a database written
// before the index existed gets one at Open. A sealed append blob stays
// sealed, a tier stays set and a pending rehydration stays pending.
func TestBlobStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	svc, client := serveOn(t, dir, nil)
	if _, err := client.CreateContainer(ctx, "box", nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		_, err := client.ServiceClient().NewContainerClient("box").NewBlockBlobClient(name).
			Upload(ctx, nopCloser("x"), &blockblob.UploadOptions{Tags: map[string]string{"project": "alpha"}})
		if err != nil {
			t.Fatal(err)
		}
	}
	ac := client.ServiceClient().NewContainerClient("box").NewAppendBlobClient("log")
	if _, err := ac.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Seal(ctx, nil); err != nil {
		t.Fatal(err)
	}
	a := client.ServiceClient().NewContainerClient("box").NewBlobClient("a")
	if _, err := a.SetTier(ctx, blob.AccessTierArchive, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetTier(ctx, blob.AccessTierCool, nil); err != nil {
		t.Fatal(err)
	}
	count := func(t *testing.T, svc *Service) int {
		t.Helper()
		n := 0
		err := svc.view(func(tx *boltlog.Tx) error {
			return tx.Bucket(bktTagIndex).ForEach(func(k, v []byte) error { n++; return nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(t, svc); n != 2 {
		t.Fatalf("%d index entries, want 2", n)
	}
	// Forget the index, as a database from before it would be.
	err := svc.db.Update(func(tx *boltlog.Tx) error {
		if err := tx.DeleteBucket(bktTagIndex); err != nil {
			return err
		}
		return tx.DeleteBucket(bktBlobTags)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc, client = serveOn(t, dir, nil)
	if n := count(t, svc); n != 2 {
		t.Fatalf("%d index entries after reopening, want 2", n)
	}
	resp, err := client.ServiceClient().FilterBlobs(ctx, `"project" = 'alpha'`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Blobs) != 2 {
		t.Fatalf("found %d blobs after reopening, want 2", len(resp.Blobs))
	}
	p, err := client.ServiceClient().NewContainerClient("box").NewAppendBlobClient("log").GetProperties(ctx, nil)
	if err != nil || p.IsSealed == nil || !*p.IsSealed {
		t.Fatalf("sealed after reopening: %v, %v", p.IsSealed, err)
	}
	p, err = client.ServiceClient().NewContainerClient("box").NewBlobClient("a").GetProperties(ctx, nil)
	if err != nil || *p.AccessTier != "Archive" || p.ArchiveStatus == nil || *p.ArchiveStatus != "rehydrate-pending-to-cool" {
		t.Fatalf("tier after reopening: %v %v, %v", p.AccessTier, p.ArchiveStatus, err)
	}
	// The rehydration completes on the restarted service's clock.
	svc.skew.Store(int64(rehydrateStandard))
	p, err = client.ServiceClient().NewContainerClient("box").NewBlobClient("a").GetProperties(ctx, nil)
	if err != nil || *p.AccessTier != "Cool" || p.ArchiveStatus != nil {
		t.Fatalf("tier after the rehydration: %v %v, %v", p.AccessTier, p.ArchiveStatus, err)
	}
}
