package blob

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// TestSoftDeletedBlobs: a soft-deleted blob keeps its bytes across a
// restart (its files stay referenced, so the sweep at Open keeps them) and
// can be undeleted there; once its retention has ended the hourly sweep
// releases everything it held, as does deleting its container.
func TestSoftDeletedBlobs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	svc, client := serveOn(t, dir, nil)
	if _, err := client.ServiceClient().SetProperties(ctx, &service.SetPropertiesOptions{
		DeleteRetentionPolicy: &service.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr[int32](1)}}); err != nil {
		t.Fatal(err)
	}
	cc := client.ServiceClient().NewContainerClient("box")
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	bb := cc.NewBlockBlobClient("b")
	if _, err := bb.Upload(ctx, nopCloser("soft"), nil); err != nil {
		t.Fatal(err)
	}
	pc := cc.NewPageBlobClient("disk")
	if _, err := pc.Create(ctx, 512, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.UploadPages(ctx, nopCloser(string(randBytes(512, 1))), blob.HTTPRange{Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.CreateSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, bc := range []*blob.Client{bb.BlobClient(), pc.BlobClient()} {
		if _, err := bc.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc, client = serveOn(t, dir, nil)
	cc = client.ServiceClient().NewContainerClient("box")
	if _, err := cc.NewBlobClient("b").Undelete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got := download(t, ctx, cc.NewBlobClient("b"), nil); string(got) != "soft" {
		t.Fatalf("undeleted after a restart: %q", got)
	}
	_, err := cc.NewPageBlobClient("disk").NewGetPageRangesPager(nil).NextPage(ctx)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")

	// A day later the page blob and its snapshot are gone for good.
	svc.skew.Store(int64(25 * time.Hour))
	if err := svc.sweepDeleted(svc.now()); err != nil {
		t.Fatal(err)
	}
	_, err = cc.NewBlobClient("disk").Undelete(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")

	// Deleting the container releases the soft-deleted blobs in it.
	if _, err := cc.NewBlobClient("b").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, svc)
}
