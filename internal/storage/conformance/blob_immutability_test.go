package conformance

// Blob service: blob-level immutability (Set and Delete Blob Immutability
// Policy, Set Blob Legal Hold). Azure takes these on containers with
// version-level immutability, a setting of its management plane; Weft takes
// them on any container.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/weftcloud/weft/internal/storage"
)

// checkImmutable checks that bc cannot be changed or deleted, with code.
func checkImmutable(t *testing.T, env *blobEnv, cc *container.Client, bc *blockblob.Client, code string) {
	t.Helper()
	ctx := context.Background()
	_, err := bc.Delete(ctx, nil)
	wantErr(t, err, http.StatusConflict, code)
	_, err = bc.Upload(ctx, body("overwritten"), nil)
	wantErr(t, err, http.StatusConflict, code)
	_, err = bc.SetMetadata(ctx, map[string]*string{"k": to.Ptr("v")}, nil)
	wantErr(t, err, http.StatusConflict, code)
	_, err = bc.SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain")}, nil)
	wantErr(t, err, http.StatusConflict, code)
	_, err = cc.Delete(ctx, nil)
	wantErr(t, err, http.StatusConflict, code)
	if got := readAll(t, bc.BlobClient()); got != "record" {
		t.Errorf("content %q", got)
	}
}

func TestBlob_SetBlobLegalHold(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Legal Hold")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "record", nil)
	t.Run("success", func(t *testing.T) {
		resp, err := bc.SetLegalHold(ctx, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.LegalHold == nil || !*resp.LegalHold {
			t.Errorf("x-ms-legal-hold %v", resp.LegalHold)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || p.LegalHold == nil || !*p.LegalHold {
			t.Errorf("properties: legal hold %v, %v", p.LegalHold, err)
		}
		page, err := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{LegalHold: true}}).NextPage(ctx)
		if err != nil || page.Segment.BlobItems[0].Properties.LegalHold == nil || !*page.Segment.BlobItems[0].Properties.LegalHold {
			t.Errorf("listing: %v", err)
		}
	})
	t.Run("BlobImmutableDueToLegalHold", func(t *testing.T) {
		checkImmutable(t, env, cc, bc, "BlobImmutableDueToLegalHold")
		// Tags are not content: they may change.
		if _, err := bc.SetTags(ctx, map[string]string{"k": "v"}, nil); err != nil {
			t.Error(err)
		}
	})
	t.Run("cleared", func(t *testing.T) {
		if _, err := bc.SetLegalHold(ctx, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := bc.Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		env.upload(t, cc, "c", "x", nil)
		env.do(t, http.MethodPut, "/box/c?comp=legalhold", map[string]string{"x-ms-legal-hold": "maybe"}, nil).want(t, http.StatusBadRequest, "InvalidHeaderValue")
		env.do(t, http.MethodPut, "/box/c?comp=legalhold", nil, nil).want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").SetLegalHold(ctx, true, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}

func TestBlob_SetBlobImmutabilityPolicy(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Immutability Policy")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "record", nil)
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	t.Run("success", func(t *testing.T) {
		resp, err := bc.SetImmutabilityPolicy(ctx, until, &blob.SetImmutabilityPolicyOptions{Mode: to.Ptr(blob.ImmutabilityPolicySettingUnlocked)})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ImmutabilityPolicyExpiry == nil || !resp.ImmutabilityPolicyExpiry.Equal(until) || *resp.ImmutabilityPolicyMode != blob.ImmutabilityPolicyModeUnlocked {
			t.Errorf("answer: until %v mode %v", resp.ImmutabilityPolicyExpiry, resp.ImmutabilityPolicyMode)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || p.ImmutabilityPolicyExpiresOn == nil || !p.ImmutabilityPolicyExpiresOn.Equal(until) {
			t.Errorf("properties: %v, %v", p.ImmutabilityPolicyExpiresOn, err)
		}
	})
	t.Run("BlobImmutableDueToPolicy", func(t *testing.T) {
		checkImmutable(t, env, cc, bc, "BlobImmutableDueToPolicy")
	})
	t.Run("locked policies only extend", func(t *testing.T) {
		if _, err := bc.SetImmutabilityPolicy(ctx, until, &blob.SetImmutabilityPolicyOptions{Mode: to.Ptr(blob.ImmutabilityPolicySettingLocked)}); err != nil {
			t.Fatal(err)
		}
		_, err := bc.SetImmutabilityPolicy(ctx, until.Add(-time.Minute), &blob.SetImmutabilityPolicyOptions{Mode: to.Ptr(blob.ImmutabilityPolicySettingLocked)})
		wantErr(t, err, http.StatusConflict, "BlobImmutableDueToPolicy")
		_, err = bc.SetImmutabilityPolicy(ctx, until.Add(time.Hour), &blob.SetImmutabilityPolicyOptions{Mode: to.Ptr(blob.ImmutabilityPolicySettingUnlocked)})
		wantErr(t, err, http.StatusConflict, "BlobImmutableDueToPolicy")
		if _, err := bc.SetImmutabilityPolicy(ctx, until.Add(time.Hour), &blob.SetImmutabilityPolicyOptions{Mode: to.Ptr(blob.ImmutabilityPolicySettingLocked)}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		c := env.upload(t, cc, "c", "x", nil)
		_, err := c.SetImmutabilityPolicy(ctx, time.Now().Add(-time.Hour), nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidHeaderValue")
		env.do(t, http.MethodPut, "/box/c?comp=immutabilityPolicies", map[string]string{
			"x-ms-immutability-policy-until-date": until.Format(http.TimeFormat), "x-ms-immutability-policy-mode": "Forever"}, nil).want(t, http.StatusBadRequest, "InvalidHeaderValue")
		env.do(t, http.MethodPut, "/box/c?comp=immutabilityPolicies", nil, nil).want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
	t.Run("on write", func(t *testing.T) {
		_, err := cc.NewBlockBlobClient("w").Upload(ctx, body("record"), &blockblob.UploadOptions{
			ImmutabilityPolicyExpiryTime: to.Ptr(until), ImmutabilityPolicyMode: to.Ptr(blob.ImmutabilityPolicySettingUnlocked), LegalHold: to.Ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cc.NewBlobClient("w").Delete(ctx, nil)
		wantErr(t, err, http.StatusConflict, "BlobImmutableDueToLegalHold")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").SetImmutabilityPolicy(ctx, until, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}

func TestBlob_DeleteBlobImmutabilityPolicy(t *testing.T) {
	cover(t, storage.Blob, "Delete Blob Immutability Policy")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "record", nil)
	until := time.Now().Add(time.Hour)
	t.Run("success", func(t *testing.T) {
		if _, err := bc.SetImmutabilityPolicy(ctx, until, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := bc.DeleteImmutabilityPolicy(ctx, nil); err != nil {
			t.Fatal(err)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || p.ImmutabilityPolicyExpiresOn != nil {
			t.Errorf("after delete: %v, %v", p.ImmutabilityPolicyExpiresOn, err)
		}
		if _, err := bc.SetMetadata(ctx, map[string]*string{"k": to.Ptr("v")}, nil); err != nil {
			t.Errorf("a blob without a policy is mutable again: %v", err)
		}
	})
	t.Run("BlobImmutableDueToPolicy", func(t *testing.T) {
		// A locked policy cannot be deleted.
		if _, err := bc.SetImmutabilityPolicy(ctx, until, &blob.SetImmutabilityPolicyOptions{Mode: to.Ptr(blob.ImmutabilityPolicySettingLocked)}); err != nil {
			t.Fatal(err)
		}
		_, err := bc.DeleteImmutabilityPolicy(ctx, nil)
		wantErr(t, err, http.StatusConflict, "BlobImmutableDueToPolicy")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").DeleteImmutabilityPolicy(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}
