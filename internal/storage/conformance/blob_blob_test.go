package conformance

// Blob service: operations on blobs of every type.

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/weftcloud/weft/internal/storage"
)

func TestBlob_GetBlob(t *testing.T) {
	cover(t, storage.Blob, "Get Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello, world", teamTags)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 7, Count: 5}})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "world" {
			t.Fatalf("range body %q, %v", body, err)
		}
		if *resp.ContentRange != "bytes 7-11/12" || *resp.BlobType != blob.BlobTypeBlockBlob || *resp.TagCount != 2 {
			t.Errorf("answer: range %v type %v tag count %v", *resp.ContentRange, *resp.BlobType, *resp.TagCount)
		}
	})
	t.Run("x-ms-range-get-content-md5", func(t *testing.T) {
		// The MD5 of the range asked for, up to 4 MiB; without a range, 400.
		r := env.do(t, http.MethodGet, "/box/b", map[string]string{"x-ms-range": "bytes=7-11", "x-ms-range-get-content-md5": "true"}, nil)
		r.want(t, http.StatusPartialContent, "")
		sum := md5.Sum([]byte("world"))
		if got := r.header.Get("Content-MD5"); got != base64.StdEncoding.EncodeToString(sum[:]) || string(r.body) != "world" {
			t.Errorf("Content-MD5 %q body %q", got, r.body)
		}
		r = env.do(t, http.MethodGet, "/box/b", map[string]string{"x-ms-range-get-content-md5": "true"}, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("without a range: %d", r.status)
		}
		// The range asked for counts, even past the blob's end.
		r = env.do(t, http.MethodGet, "/box/b", map[string]string{"x-ms-range": "bytes=0-4194304", "x-ms-range-get-content-md5": "true"}, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("over 4 MiB: %d", r.status)
		}
	})
	t.Run("malformed Range", func(t *testing.T) {
		// Azure ignores a Range header it cannot parse, as HTTP allows,
		// and answers the whole blob.
		for _, v := range []string{"bytes=abc-", "bytes=5", "bytes=9-3", "items=0-1", "bytes=-5"} {
			r := env.do(t, http.MethodGet, "/box/b", map[string]string{"Range": v}, nil)
			if r.status != http.StatusOK || string(r.body) != "hello, world" {
				t.Errorf("Range %s: %d %q", v, r.status, r.body)
			}
		}
	})
	t.Run("x-ms-client-request-id", func(t *testing.T) {
		// Echoed on every answer, failures included.
		for _, path := range []string{"/box/b", "/box/absent", "/absent/b", "/box/b?comp=nonsense"} {
			r := env.do(t, http.MethodGet, path, map[string]string{"x-ms-client-request-id": "trace-42"}, nil)
			if got := r.header.Get("x-ms-client-request-id"); got != "trace-42" {
				t.Errorf("GET %s (%d): x-ms-client-request-id %q", path, r.status, got)
			}
		}
		// A request refused before it reaches the blob service, too.
		req, err := http.NewRequest(http.MethodGet, env.endpoint+"/box/b", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-ms-client-request-id", "trace-43")
		req.Header.Set("Authorization", "SharedKey "+storage.DevAccount+":bad")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-ms-client-request-id") != "trace-43" {
			t.Errorf("refused request: %d, x-ms-client-request-id %q", resp.StatusCode, resp.Header.Get("x-ms-client-request-id"))
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").DownloadStream(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").NewBlobClient("b").DownloadStream(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
	checkIfTags(t, func(cond string) error {
		resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: ifTagsAccess(cond)})
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
}

func TestBlob_GetBlobProperties(t *testing.T) {
	cover(t, storage.Blob, "Get Blob Properties")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		p, err := bc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *p.ContentLength != 5 || *p.BlobType != blob.BlobTypeBlockBlob || *p.TagCount != 2 {
			t.Errorf("properties: length %d type %s tag count %d", *p.ContentLength, *p.BlobType, *p.TagCount)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		// A HEAD answer has no body: the code is in x-ms-error-code.
		_, err := cc.NewBlobClient("absent").GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_SetBlobProperties(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Properties")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		if _, err := bc.SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain")}, nil); err != nil {
			t.Fatal(err)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || *p.ContentType != "text/plain" {
			t.Errorf("content type after set: %v, %v", p.ContentType, err)
		}
	})
	t.Run("Content-MD5 of any length", func(t *testing.T) {
		// Azure stores the x-ms-blob-content-md5 it is given, 16 bytes or not.
		odd := []byte("not sixteen")
		if _, err := bc.SetHTTPHeaders(ctx, blob.HTTPHeaders{BlobContentMD5: odd}, nil); err != nil {
			t.Fatal(err)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || string(p.ContentMD5) != string(odd) {
			t.Errorf("Content-MD5 after set: %q, %v", p.ContentMD5, err)
		}
		r := env.do(t, http.MethodPut, "/box/b?comp=properties", map[string]string{"x-ms-blob-content-md5": "***"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").SetHTTPHeaders(ctx, blob.HTTPHeaders{}, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.SetHTTPHeaders(ctx, blob.HTTPHeaders{}, &blob.SetHTTPHeadersOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_GetBlobMetadata(t *testing.T) {
	cover(t, storage.Blob, "Get Blob Metadata")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	if _, err := bc.SetMetadata(ctx, map[string]*string{"color": to.Ptr("green")}, nil); err != nil {
		t.Fatal(err)
	}
	// The SDKs read metadata through Get Blob Properties; raw requests.
	get := func(cond string) response {
		var hdr map[string]string
		if cond != "" {
			hdr = map[string]string{"x-ms-if-tags": cond}
		}
		return env.do(t, http.MethodGet, "/box/b?comp=metadata", hdr, nil)
	}
	t.Run("success", func(t *testing.T) {
		r := get("")
		r.want(t, http.StatusOK, "")
		if r.header.Get("x-ms-meta-color") != "green" || r.header.Get("ETag") == "" {
			t.Errorf("answer headers %v", r.header)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		env.do(t, http.MethodGet, "/box/absent?comp=metadata", nil, nil).want(t, http.StatusNotFound, "BlobNotFound")
	})
	t.Run("x-ms-if-tags", func(t *testing.T) {
		get(tagsFalse).want(t, http.StatusPreconditionFailed, "ConditionNotMet")
		get(tagsMalformed).want(t, http.StatusBadRequest, "InvalidHeaderValue")
		get(tagsTrue).want(t, http.StatusOK, "")
	})
}

func TestBlob_SetBlobMetadata(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Metadata")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		if _, err := bc.SetMetadata(ctx, map[string]*string{"color": to.Ptr("green")}, nil); err != nil {
			t.Fatal(err)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || p.Metadata["Color"] == nil || *p.Metadata["Color"] != "green" {
			t.Errorf("metadata after set: %v, %v", p.Metadata, err)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").SetMetadata(ctx, nil, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.SetMetadata(ctx, nil, &blob.SetMetadataOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_SnapshotBlob(t *testing.T) {
	cover(t, storage.Blob, "Snapshot Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		snap, err := bc.CreateSnapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if snap.Snapshot == nil || *snap.Snapshot == "" {
			t.Fatal("no x-ms-snapshot")
		}
		// The snapshot keeps the blob's tags.
		sc, err := bc.WithSnapshot(*snap.Snapshot)
		if err != nil {
			t.Fatal(err)
		}
		p, err := sc.GetProperties(ctx, nil)
		if err != nil || *p.TagCount != 2 {
			t.Errorf("snapshot properties: %v, %v", p.TagCount, err)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").CreateSnapshot(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.CreateSnapshot(ctx, &blob.CreateSnapshotOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_LeaseBlob(t *testing.T) {
	cover(t, storage.Blob, "Lease Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	lc, err := lease.NewBlobClient(bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		if _, err := lc.AcquireLease(ctx, 15, nil); err != nil {
			t.Fatal(err)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || *p.LeaseState != lease.StateTypeLeased {
			t.Errorf("lease state %v, %v", p.LeaseState, err)
		}
		if _, err := lc.ReleaseLease(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("breaking", func(t *testing.T) {
		// During a break period the lease is breaking and still locks.
		held := env.upload(t, cc, "held", "x", nil)
		hl, err := lease.NewBlobClient(held, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hl.AcquireLease(ctx, -1, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := hl.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to.Ptr[int32](60)}); err != nil {
			t.Fatal(err)
		}
		p, err := held.GetProperties(ctx, nil)
		if err != nil || *p.LeaseState != lease.StateTypeBreaking || *p.LeaseStatus != lease.StatusTypeLocked {
			t.Fatalf("during the break: %v %v, %v", p.LeaseState, p.LeaseStatus, err)
		}
		_, err = hl.AcquireLease(ctx, -1, nil)
		wantErr(t, err, http.StatusConflict, "LeaseIsBreakingAndCannotBeAcquired")
		_, err = hl.ChangeLease(ctx, "00000000-0000-0000-0000-000000000001", nil)
		wantErr(t, err, http.StatusConflict, "LeaseIsBreakingAndCannotBeChanged")
		_, err = held.SetMetadata(ctx, nil, nil)
		wantErr(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
		if _, err := hl.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to.Ptr[int32](0)}); err != nil {
			t.Fatal(err)
		}
		_, err = hl.RenewLease(ctx, nil)
		wantErr(t, err, http.StatusConflict, "LeaseIsBrokenAndCannotBeRenewed")
	})
	t.Run("lease error codes", func(t *testing.T) {
		held := env.upload(t, cc, "held2", "x", nil)
		hl, err := lease.NewBlobClient(held, nil)
		if err != nil {
			t.Fatal(err)
		}
		other, err := lease.NewBlobClient(held, &lease.BlobClientOptions{LeaseID: to.Ptr("00000000-0000-0000-0000-000000000002")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = hl.RenewLease(ctx, nil)
		wantErr(t, err, http.StatusConflict, "LeaseNotPresentWithLeaseOperation")
		if _, err := hl.AcquireLease(ctx, 15, nil); err != nil {
			t.Fatal(err)
		}
		_, err = other.AcquireLease(ctx, 15, nil)
		wantErr(t, err, http.StatusConflict, "LeaseAlreadyPresent")
		_, err = other.ReleaseLease(ctx, nil)
		wantErr(t, err, http.StatusConflict, "LeaseIdMismatchWithLeaseOperation")
		_, err = held.SetMetadata(ctx, nil, &blob.SetMetadataOptions{AccessConditions: &blob.AccessConditions{
			LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: to.Ptr("00000000-0000-0000-0000-000000000002")}}})
		wantErr(t, err, http.StatusPreconditionFailed, "LeaseIdMismatchWithBlobOperation")
		if _, err := hl.AcquireLease(ctx, 20, nil); err != nil {
			t.Fatal(err) // acquiring again with the same ID renews it
		}
		r := env.do(t, http.MethodPut, "/box/held2?comp=lease", map[string]string{"x-ms-lease-action": "acquire", "x-ms-lease-duration": "10", "x-ms-proposed-lease-id": "x"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
		r = env.do(t, http.MethodPut, "/box/held2?comp=lease", map[string]string{"x-ms-lease-action": "acquire", "x-ms-lease-duration": "14"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		other, err := lease.NewBlobClient(cc.NewBlobClient("absent"), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = other.AcquireLease(ctx, 15, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := lc.AcquireLease(ctx, -1, &lease.BlobAcquireOptions{ModifiedAccessConditions: ifTags(cond)})
		return err
	})
}

func TestBlob_DeleteBlob(t *testing.T) {
	cover(t, storage.Blob, "Delete Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	t.Run("SnapshotsPresent", func(t *testing.T) {
		if _, err := bc.CreateSnapshot(ctx, nil); err != nil {
			t.Fatal(err)
		}
		_, err := bc.Delete(ctx, nil)
		wantErr(t, err, http.StatusConflict, "SnapshotsPresent")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").Delete(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude), AccessConditions: ifTagsAccess(cond)})
		return err
	})
	t.Run("success", func(t *testing.T) {
		// The last subtest deleted the blob.
		_, err := bc.GetProperties(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}

func TestBlob_PutBlob(t *testing.T) {
	cover(t, storage.Blob, "Put Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		bc := env.upload(t, cc, "b", "hello", teamTags)
		got, err := bc.GetTags(ctx, nil)
		if err != nil || len(got.BlobTagSet) != 2 {
			t.Errorf("tags set by x-ms-tags: %v, %v", got.BlobTagSet, err)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").NewBlockBlobClient("b").Upload(ctx, body("x"), nil)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
	t.Run("BlobAlreadyExists", func(t *testing.T) {
		_, err := cc.NewBlockBlobClient("b").Upload(ctx, body("x"), &blockblob.UploadOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
		wantErr(t, err, http.StatusConflict, "BlobAlreadyExists")
	})
	// An overwrite is conditional on the tags of the blob it replaces.
	checkIfTags(t, func(cond string) error {
		_, err := cc.NewBlockBlobClient("b").Upload(ctx, body("again"), &blockblob.UploadOptions{Tags: teamTags, AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_CopyBlob(t *testing.T) {
	cover(t, storage.Blob, "Copy Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	src := env.upload(t, cc, "src", "hello", teamTags)
	dst := cc.NewBlobClient("dst")
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		resp, err := dst.StartCopyFromURL(ctx, src.URL(), &blob.StartCopyFromURLOptions{BlobTags: map[string]string{"copied": "yes"}})
		if err != nil {
			t.Fatal(err)
		}
		if *resp.CopyStatus != blob.CopyStatusTypeSuccess {
			t.Errorf("copy status %v", *resp.CopyStatus)
		}
		// x-ms-tags gives the copy its tags; the source's are not copied.
		got, err := dst.GetTags(ctx, nil)
		if err != nil || len(got.BlobTagSet) != 1 || *got.BlobTagSet[0].Key != "copied" {
			t.Errorf("copy's tags %v, %v", got.BlobTagSet, err)
		}
	})
	t.Run("CannotVerifyCopySource", func(t *testing.T) {
		_, err := dst.StartCopyFromURL(ctx, cc.NewBlobClient("absent").URL(), nil)
		wantErr(t, err, http.StatusNotFound, "CannotVerifyCopySource")
	})
	t.Run("x-ms-source-if-tags", func(t *testing.T) {
		copyIf := func(cond string) error {
			_, err := dst.StartCopyFromURL(ctx, src.URL(), &blob.StartCopyFromURLOptions{
				SourceModifiedAccessConditions: &blob.SourceModifiedAccessConditions{SourceIfTags: to.Ptr(cond)}})
			return err
		}
		wantErr(t, copyIf(tagsFalse), http.StatusPreconditionFailed, "SourceConditionNotMet")
		wantErr(t, copyIf(tagsMalformed), http.StatusBadRequest, "InvalidHeaderValue")
		if err := copyIf(tagsTrue); err != nil {
			t.Fatal(err)
		}
	})
	// The destination's condition: the copy above left it untagged, so tag it.
	if _, err := dst.SetTags(ctx, teamTags, nil); err != nil {
		t.Fatal(err)
	}
	checkIfTags(t, func(cond string) error {
		_, err := dst.StartCopyFromURL(ctx, src.URL(), &blob.StartCopyFromURLOptions{BlobTags: teamTags, AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_SetBlobTier(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Tier")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := env.upload(t, cc, "b", "hello", teamTags)
	ctx := context.Background()
	tierOf := func(t *testing.T, bc *blob.Client) blob.GetPropertiesResponse {
		t.Helper()
		p, err := bc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	checkIfTags(t, func(cond string) error {
		_, err := bc.SetTier(ctx, blob.AccessTierHot, &blob.SetTierOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
	t.Run("success", func(t *testing.T) {
		// Until a tier is set, the blob is Hot, inferred.
		fresh := env.upload(t, cc, "fresh", "x", nil)
		p := tierOf(t, fresh.BlobClient())
		if *p.AccessTier != "Hot" || p.AccessTierInferred == nil || !*p.AccessTierInferred || p.AccessTierChangeTime != nil {
			t.Errorf("new blob: tier %v inferred %v changed %v", *p.AccessTier, p.AccessTierInferred, p.AccessTierChangeTime)
		}
		for _, tier := range []blob.AccessTier{blob.AccessTierCool, blob.AccessTierCold, blob.AccessTierHot} {
			r := env.do(t, http.MethodPut, "/box/fresh?comp=tier", map[string]string{"x-ms-access-tier": string(tier)}, nil)
			r.want(t, http.StatusOK, "")
			p := tierOf(t, fresh.BlobClient())
			if *p.AccessTier != string(tier) || (p.AccessTierInferred != nil && *p.AccessTierInferred) || p.AccessTierChangeTime == nil {
				t.Errorf("after %s: tier %v inferred %v changed %v", tier, *p.AccessTier, p.AccessTierInferred, p.AccessTierChangeTime)
			}
		}
	})
	t.Run("BlobArchived", func(t *testing.T) {
		if _, err := bc.SetTier(ctx, blob.AccessTierArchive, nil); err != nil {
			t.Fatal(err)
		}
		if p := tierOf(t, bc.BlobClient()); *p.AccessTier != "Archive" {
			t.Errorf("tier %v", *p.AccessTier)
		}
		_, err := bc.DownloadStream(ctx, nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
		_, err = bc.SetMetadata(ctx, map[string]*string{"k": to.Ptr("v")}, nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
		_, err = bc.CreateSnapshot(ctx, nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
		// Tags and properties stay readable.
		if _, err := bc.GetTags(ctx, nil); err != nil {
			t.Error(err)
		}
	})
	t.Run("rehydration", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box/b?comp=tier", map[string]string{"x-ms-access-tier": "Hot", "x-ms-rehydrate-priority": "High"}, nil)
		r.want(t, http.StatusAccepted, "")
		p := tierOf(t, bc.BlobClient())
		if *p.AccessTier != "Archive" || p.ArchiveStatus == nil || *p.ArchiveStatus != "rehydrate-pending-to-hot" || *p.RehydratePriority != string(blob.RehydratePriorityHigh) {
			t.Errorf("rehydrating: tier %v status %v priority %v", *p.AccessTier, p.ArchiveStatus, p.RehydratePriority)
		}
		_, err := bc.DownloadStream(ctx, nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
		_, err = bc.SetTier(ctx, blob.AccessTierCool, nil)
		wantErr(t, err, http.StatusConflict, "BlobBeingRehydrated")
		page, err := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr("b")}).NextPage(ctx)
		if err != nil || len(page.Segment.BlobItems) != 1 || page.Segment.BlobItems[0].Properties.ArchiveStatus == nil {
			t.Errorf("listing while rehydrating: %v", err)
		}
		// High priority completes within seconds here (Azure: under an hour).
		deadline := time.Now().Add(10 * time.Second)
		for *tierOf(t, bc.BlobClient()).AccessTier != "Hot" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		p = tierOf(t, bc.BlobClient())
		if *p.AccessTier != "Hot" || p.ArchiveStatus != nil {
			t.Fatalf("after rehydration: tier %v status %v", *p.AccessTier, p.ArchiveStatus)
		}
		if got := readAll(t, bc.BlobClient()); got != "hello" {
			t.Errorf("content after rehydration %q", got)
		}
	})
	t.Run("tier on write and copy", func(t *testing.T) {
		_, err := cc.NewBlockBlobClient("cold").Upload(ctx, body("x"), &blockblob.UploadOptions{Tier: to.Ptr(blob.AccessTierCold)})
		if err != nil {
			t.Fatal(err)
		}
		if p := tierOf(t, cc.NewBlobClient("cold")); *p.AccessTier != "Cold" {
			t.Errorf("Put Blob with x-ms-access-tier Cold: %v", *p.AccessTier)
		}
		if _, err := cc.NewBlobClient("copy").StartCopyFromURL(ctx, cc.NewBlobClient("cold").URL(), &blob.StartCopyFromURLOptions{Tier: to.Ptr(blob.AccessTierCool)}); err != nil {
			t.Fatal(err)
		}
		if p := tierOf(t, cc.NewBlobClient("copy")); *p.AccessTier != "Cool" {
			t.Errorf("copy with x-ms-access-tier Cool: %v", *p.AccessTier)
		}
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		env.do(t, http.MethodPut, "/box/b?comp=tier", map[string]string{"x-ms-access-tier": "Lukewarm"}, nil).want(t, http.StatusBadRequest, "InvalidHeaderValue")
		env.do(t, http.MethodPut, "/box/b?comp=tier", map[string]string{"x-ms-access-tier": "Cool", "x-ms-rehydrate-priority": "Urgent"}, nil).want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
	t.Run("InvalidBlobType", func(t *testing.T) {
		ac := cc.NewAppendBlobClient("append")
		if _, err := ac.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
		// (The SDK refuses before sending; raw.)
		env.do(t, http.MethodPut, "/box/append?comp=tier", map[string]string{"x-ms-access-tier": "Cool"}, nil).want(t, http.StatusConflict, "InvalidBlobType")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").SetTier(ctx, blob.AccessTierCool, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}

// readAll downloads a blob's content.
func readAll(t *testing.T, bc *blob.Client) string {
	t.Helper()
	resp, err := bc.DownloadStream(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
