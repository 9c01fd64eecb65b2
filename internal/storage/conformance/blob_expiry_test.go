package conformance

// Blob service: Set Blob Expiry, and what an expired blob is.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/weftcloud/weft/internal/storage"
)

// Azure allows Set Blob Expiry only on accounts with a hierarchical
// namespace (400 elsewhere); Weft has none and allows it on every blob,
// so these tests run on the development account.
func TestBlob_SetBlobExpiry(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Expiry")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "expiring", nil)
	props, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.ExpiresOn != nil {
		t.Fatalf("a new blob has an expiry time %v", props.ExpiresOn)
	}
	expiresOn := func(t *testing.T) time.Time {
		t.Helper()
		p, err := bc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.ExpiresOn == nil {
			return time.Time{}
		}
		return *p.ExpiresOn
	}

	t.Run("success", func(t *testing.T) {
		before := time.Now().Truncate(time.Second)
		resp, err := bc.SetExpiry(ctx, blockblob.ExpiryTypeRelativeToNow(time.Hour), nil)
		if err != nil {
			t.Fatal(err)
		}
		// The expiry time is no property of the content: the ETag stays.
		if resp.ETag == nil || *resp.ETag != *props.ETag || resp.LastModified == nil {
			t.Errorf("ETag %v, want %v; Last-Modified %v", resp.ETag, *props.ETag, resp.LastModified)
		}
		if got := expiresOn(t); got.Before(before.Add(time.Hour)) || got.After(time.Now().Add(time.Hour)) {
			t.Errorf("RelativeToNow 1h: x-ms-expiry-time %v, want about %v", got, before.Add(time.Hour))
		}
		if _, err := bc.SetExpiry(ctx, blockblob.ExpiryTypeRelativeToCreation(48*time.Hour), nil); err != nil {
			t.Fatal(err)
		}
		if got, want := expiresOn(t), props.CreationTime.Add(48*time.Hour); !got.Equal(want) {
			t.Errorf("RelativeToCreation 48h: x-ms-expiry-time %v, want %v", got, want)
		}
		at := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
		if _, err := bc.SetExpiry(ctx, blockblob.ExpiryTypeAbsolute(at), nil); err != nil {
			t.Fatal(err)
		}
		if got := expiresOn(t); !got.Equal(at) {
			t.Errorf("Absolute: x-ms-expiry-time %v, want %v", got, at)
		}
		// List Blobs shows it too.
		page, err := cc.NewListBlobsFlatPager(nil).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if items := page.Segment.BlobItems; len(items) != 1 || items[0].Properties.ExpiresOn == nil || !items[0].Properties.ExpiresOn.Equal(at) {
			t.Errorf("listing: %+v", items)
		}
		if _, err := bc.SetExpiry(ctx, blockblob.ExpiryTypeNever{}, nil); err != nil {
			t.Fatal(err)
		}
		if got := expiresOn(t); !got.IsZero() {
			t.Errorf("NeverExpire: x-ms-expiry-time %v", got)
		}
	})

	t.Run("expired blob is gone", func(t *testing.T) {
		gone := env.upload(t, cc, "gone", "short-lived", map[string]string{"k": "v"})
		// Expires at its creation: already past.
		if _, err := gone.SetExpiry(ctx, blockblob.ExpiryTypeRelativeToCreation(0), nil); err != nil {
			t.Fatal(err)
		}
		_, err := gone.GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
		_, err = gone.DownloadStream(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
		_, err = gone.SetExpiry(ctx, blockblob.ExpiryTypeNever{}, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
		// Nor is it found by its tags.
		found, err := env.svc.FilterBlobs(ctx, `"k" = 'v'`, nil)
		if err != nil || len(found.Blobs) != 0 {
			t.Errorf("found %d expired blobs by their tags, %v", len(found.Blobs), err)
		}
		page, err := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr("gone")}).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(page.Segment.BlobItems); n != 0 {
			t.Errorf("the expired blob is listed (%d items)", n)
		}
		// The name is free: a new blob there has no expiry time.
		again := env.upload(t, cc, "gone", "new", nil)
		p, err := again.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.ExpiresOn != nil || *p.ContentLength != 3 {
			t.Errorf("the new blob: expiry %v, length %d", p.ExpiresOn, *p.ContentLength)
		}
	})

	raw := func(t *testing.T, hdr map[string]string) response {
		t.Helper()
		return env.do(t, http.MethodPut, "/box/b?comp=expiry", hdr, nil)
	}
	t.Run("MissingRequiredHeader", func(t *testing.T) {
		raw(t, nil).want(t, http.StatusBadRequest, "MissingRequiredHeader")
		raw(t, map[string]string{"x-ms-expiry-option": "RelativeToNow"}).want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		for _, hdr := range []map[string]string{
			{"x-ms-expiry-option": "Tomorrow"},
			{"x-ms-expiry-option": "RelativeToNow", "x-ms-expiry-time": "soon"},
			{"x-ms-expiry-option": "RelativeToNow", "x-ms-expiry-time": "-5"},
			{"x-ms-expiry-option": "Absolute", "x-ms-expiry-time": "2030-01-01"},
			// NeverExpire takes no time.
			{"x-ms-expiry-option": "NeverExpire", "x-ms-expiry-time": "1000"},
		} {
			raw(t, hdr).want(t, http.StatusBadRequest, "InvalidHeaderValue")
		}
		if got := expiresOn(t); !got.IsZero() {
			t.Errorf("a refused request set the expiry time %v", got)
		}
		// The option is case-insensitive.
		raw(t, map[string]string{"x-ms-expiry-option": "neverexpire"}).want(t, http.StatusOK, "")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlockBlobClient("missing").SetExpiry(ctx, blockblob.ExpiryTypeNever{}, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("nobox").NewBlockBlobClient("b").SetExpiry(ctx, blockblob.ExpiryTypeNever{}, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
	t.Run("LeaseIdMissing", func(t *testing.T) {
		leased := env.upload(t, cc, "leased", "x", nil)
		lc, err := lease.NewBlobClient(leased, &lease.BlobClientOptions{LeaseID: to.Ptr("5b3b6a47-0a6c-4f5e-9a55-0c1a7d2f2f10")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lc.AcquireLease(ctx, -1, nil); err != nil {
			t.Fatal(err)
		}
		_, err = leased.SetExpiry(ctx, blockblob.ExpiryTypeRelativeToNow(time.Hour), nil)
		wantErr(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
	})
	t.Run("snapshot", func(t *testing.T) {
		snap, err := bc.CreateSnapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := bc.WithSnapshot(*snap.Snapshot)
		if err != nil {
			t.Fatal(err)
		}
		_, err = sc.SetExpiry(ctx, blockblob.ExpiryTypeNever{}, nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidQueryParameterValue")
	})
	t.Run("AuthorizationPermissionMismatch", func(t *testing.T) {
		// Write permission is needed; read is not enough.
		opts := &blockblob.ClientOptions{ClientOptions: env.clientOptions()}
		ro, err := blockblob.NewClientWithNoCredential(env.blobSAS(t, "box", "b", "r"), opts)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ro.SetExpiry(ctx, blockblob.ExpiryTypeRelativeToNow(time.Hour), nil)
		wantErr(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")
		rw, err := blockblob.NewClientWithNoCredential(env.blobSAS(t, "box", "b", "rw"), opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rw.SetExpiry(ctx, blockblob.ExpiryTypeRelativeToNow(time.Hour), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := rw.GetProperties(ctx, &blob.GetPropertiesOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
