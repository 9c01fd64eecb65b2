package blob

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// TestExpiredBlobs: an expiry time survives a restart; once it has passed
// the blob is gone to readers, and the background sweep releases all it
// held, bytes and index entries, without a request touching it.
func TestExpiredBlobs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	svc, client := serveOn(t, dir, nil)
	cc := client.ServiceClient().NewContainerClient("box")
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	bb := cc.NewBlockBlobClient("b")
	if _, err := bb.Upload(ctx, nopCloser("short-lived"), nil); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	if _, err := bb.SetExpiry(ctx, blockblob.ExpiryTypeAbsolute(at), nil); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc, client = serveOn(t, dir, nil)
	bb = client.ServiceClient().NewContainerClient("box").NewBlockBlobClient("b")
	p, err := bb.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.ExpiresOn == nil || !p.ExpiresOn.Equal(at) {
		t.Fatalf("after a restart the expiry time is %v, want %v", p.ExpiresOn, at)
	}
	// Not yet due: the sweep leaves it.
	if err := svc.sweepExpired(time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.GetProperties(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Expired now (by moving its time to its creation).
	if _, err := bb.SetExpiry(ctx, blockblob.ExpiryTypeRelativeToCreation(0), nil); err != nil {
		t.Fatal(err)
	}
	_, err = bb.GetProperties(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	if err := svc.sweepExpired(time.Now()); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, svc)
	if err := svc.view(func(tx *boltlog.Tx) error {
		if k, _ := tx.Bucket(bktExpiry).Cursor().First(); k != nil {
			t.Errorf("expiry index entry left: %q", k)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
