package conformance

// Blob service: soft delete (the delete retention policy) and Undelete Blob.

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/weftcloud/weft/internal/storage"
)

// listed is what a flat listing with deleted blobs and snapshots shows: the
// name, "@snapshot" when one, and " deleted" when soft-deleted.
func listed(t *testing.T, cc *container.Client) []string {
	t.Helper()
	var out []string
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Include: container.ListBlobsInclude{Deleted: true, Snapshots: true}, MaxResults: to.Ptr[int32](1)})
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			s := *b.Name
			if b.Snapshot != nil && *b.Snapshot != "" {
				s += "@snap"
			}
			if b.Deleted != nil && *b.Deleted {
				s += " deleted"
				if b.Properties.DeletedTime == nil || b.Properties.RemainingRetentionDays == nil || *b.Properties.RemainingRetentionDays != 7 {
					t.Errorf("%s: deleted time %v, remaining days %v", s, b.Properties.DeletedTime, b.Properties.RemainingRetentionDays)
				}
			}
			out = append(out, s)
		}
	}
	return out
}

func TestBlob_UndeleteBlob(t *testing.T) {
	cover(t, storage.Blob, "Undelete Blob")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "kept", teamTags)
	if _, err := bc.CreateSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		// Azure keeps deleted blobs 1 to 365 days.
		_, err := env.svc.SetProperties(ctx, &service.SetPropertiesOptions{DeleteRetentionPolicy: &service.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr[int32](366)}})
		wantErr(t, err, http.StatusBadRequest, "InvalidXmlDocument")
	})
	if _, err := env.svc.SetProperties(ctx, &service.SetPropertiesOptions{DeleteRetentionPolicy: &service.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr[int32](7)}}); err != nil {
		t.Fatal(err)
	}
	t.Run("soft delete", func(t *testing.T) {
		if _, err := bc.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)}); err != nil {
			t.Fatal(err)
		}
		_, err := bc.GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
		if got, want := listed(t, cc), []string{"b deleted", "b@snap deleted"}; !slices.Equal(got, want) {
			t.Errorf("listed %v, want %v", got, want)
		}
		// Nor does Find Blobs by Tags find it.
		found, err := env.svc.FilterBlobs(ctx, `"team" = 'blue'`, nil)
		if err != nil || len(found.Blobs) != 0 {
			t.Errorf("found %d deleted blobs, %v", len(found.Blobs), err)
		}
	})
	t.Run("success", func(t *testing.T) {
		if _, err := bc.Undelete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, bc.BlobClient()); got != "kept" {
			t.Errorf("content after undelete %q", got)
		}
		if got, want := listed(t, cc), []string{"b", "b@snap"}; !slices.Equal(got, want) {
			t.Errorf("listed %v, want %v", got, want)
		}
		found, err := env.svc.FilterBlobs(ctx, `"team" = 'blue'`, nil)
		if err != nil || len(found.Blobs) != 1 {
			t.Errorf("found %d after undelete, %v", len(found.Blobs), err)
		}
		// Undeleting a live blob with nothing deleted does nothing.
		if _, err := bc.Undelete(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("overwritten", func(t *testing.T) {
		// A blob written after the deletion stays; the deleted one stays
		// deleted (until its retention ends) rather than replace it.
		if _, err := bc.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)}); err != nil {
			t.Fatal(err)
		}
		env.upload(t, cc, "b", "newer", nil)
		if _, err := bc.Undelete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, bc.BlobClient()); got != "newer" {
			t.Errorf("content %q", got)
		}
		if got, want := listed(t, cc), []string{"b", "b deleted", "b@snap"}; !slices.Equal(got, want) {
			t.Errorf("listed %v, want %v", got, want)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("never").Undelete(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").NewBlobClient("b").Undelete(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
	t.Run("retention off", func(t *testing.T) {
		if _, err := env.svc.SetProperties(ctx, &service.SetPropertiesOptions{DeleteRetentionPolicy: &service.RetentionPolicy{Enabled: to.Ptr(false)}}); err != nil {
			t.Fatal(err)
		}
		env.upload(t, cc, "gone", "x", nil)
		r := env.do(t, http.MethodDelete, "/box/gone", nil, nil)
		r.want(t, http.StatusAccepted, "")
		if r.header.Get("x-ms-delete-type-permanent") != "true" {
			t.Errorf("x-ms-delete-type-permanent %q", r.header.Get("x-ms-delete-type-permanent"))
		}
		_, err := cc.NewBlobClient("gone").Undelete(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}
