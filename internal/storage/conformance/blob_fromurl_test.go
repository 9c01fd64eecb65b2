package conformance

// Blob service: operations that read another blob by its URL (Put Blob,
// Put Block, Append Block and Put Page From URL, Copy Blob From URL), and
// Abort Copy Blob.

import (
	"context"
	"crypto/md5"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/weftcloud/weft/internal/storage"
)

// sourceContent is the content of the source blobs of these tests.
var sourceContent = strings.Repeat("0123456789abcdef", 64) // 1 KiB

// sourceBlob uploads the source blob "src", with metadata and a content
// type, to a new container "box".
func sourceBlob(t *testing.T, env *blobEnv) (*container.Client, *blockblob.Client) {
	t.Helper()
	cc := env.container(t, "box")
	src := cc.NewBlockBlobClient("src")
	if _, err := src.Upload(context.Background(), body(sourceContent), &blockblob.UploadOptions{
		Metadata:    map[string]*string{"from": to.Ptr("source")},
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain"), BlobContentLanguage: to.Ptr("en")},
	}); err != nil {
		t.Fatal(err)
	}
	return cc, src
}

// archivedSource uploads "cold" and archives it.
func archivedSource(t *testing.T, env *blobEnv, cc *container.Client) *blockblob.Client {
	t.Helper()
	bc := env.upload(t, cc, "cold", "frozen", nil)
	if _, err := bc.SetTier(context.Background(), blob.AccessTierArchive, nil); err != nil {
		t.Fatal(err)
	}
	return bc
}

func TestBlob_PutBlobFromURL(t *testing.T) {
	cover(t, storage.Blob, "Put Blob From URL")
	env := newBlobEnv(t)
	cc, src := sourceBlob(t, env)
	ctx := context.Background()
	dst := cc.NewBlockBlobClient("dst")
	t.Run("success", func(t *testing.T) {
		// 201, as Put Blob: the request's metadata, the source's properties
		// but those the request gives.
		if _, err := dst.UploadBlobFromURL(ctx, src.URL(), &blockblob.UploadBlobFromURLOptions{
			Metadata:    map[string]*string{"mine": to.Ptr("yes")},
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/csv")},
			Tags:        teamTags,
		}); err != nil {
			t.Fatal(err)
		}
		p, err := dst.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *p.ContentType != "text/csv" || p.ContentLanguage == nil || *p.ContentLanguage != "en" || p.Metadata["Mine"] == nil ||
			p.Metadata["From"] != nil || *p.TagCount != 2 || p.CopyStatus != nil || *p.BlobType != blob.BlobTypeBlockBlob {
			t.Errorf("properties: type %s language %v metadata %v tags %v copy status %v", *p.ContentType, p.ContentLanguage, p.Metadata, *p.TagCount, p.CopyStatus)
		}
		if got := readAll(t, dst.BlobClient()); got != sourceContent {
			t.Errorf("content %.40q", got)
		}
	})
	t.Run("x-ms-copy-source-blob-properties false", func(t *testing.T) {
		if _, err := dst.UploadBlobFromURL(ctx, src.URL(), &blockblob.UploadBlobFromURLOptions{CopySourceBlobProperties: to.Ptr(false)}); err != nil {
			t.Fatal(err)
		}
		p, err := dst.GetProperties(ctx, nil)
		if err != nil || *p.ContentType != "application/octet-stream" || p.ContentLanguage != nil {
			t.Errorf("properties %v %v, %v", p.ContentType, p.ContentLanguage, err)
		}
	})
	t.Run("x-ms-copy-source-tag-option", func(t *testing.T) {
		if _, err := src.SetTags(ctx, map[string]string{"origin": "src"}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.UploadBlobFromURL(ctx, src.URL(), &blockblob.UploadBlobFromURLOptions{CopySourceTags: to.Ptr(blockblob.BlobCopySourceTagsCopy)}); err != nil {
			t.Fatal(err)
		}
		got, err := dst.GetTags(ctx, nil)
		if err != nil || len(got.BlobTagSet) != 1 || *got.BlobTagSet[0].Key != "origin" {
			t.Errorf("tags copied: %v, %v", got.BlobTagSet, err)
		}
		// COPY takes no x-ms-tags; the option has two values.
		_, err = dst.UploadBlobFromURL(ctx, src.URL(), &blockblob.UploadBlobFromURLOptions{CopySourceTags: to.Ptr(blockblob.BlobCopySourceTagsCopy), Tags: teamTags})
		wantErr(t, err, http.StatusBadRequest, "InvalidHeaderValue")
		r := env.do(t, http.MethodPut, "/box/dst", map[string]string{"x-ms-blob-type": "BlockBlob", "x-ms-copy-source": src.URL(), "x-ms-copy-source-tag-option": "MERGE"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
		if got, err := dst.GetTags(ctx, nil); err != nil || len(got.BlobTagSet) != 1 {
			t.Errorf("tags after refused copies: %v, %v", got.BlobTagSet, err)
		}
	})
	t.Run("from an append blob", func(t *testing.T) {
		ac := cc.NewAppendBlobClient("log")
		if _, err := ac.Create(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ac.AppendBlock(ctx, body("line\n"), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.UploadBlobFromURL(ctx, ac.URL(), nil); err != nil {
			t.Fatal(err)
		}
		// The copy is a block blob of its own: appending to the source
		// changes it not.
		if _, err := ac.AppendBlock(ctx, body("more\n"), nil); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, dst.BlobClient()); got != "line\n" {
			t.Errorf("content %q", got)
		}
	})
	t.Run("Md5Mismatch", func(t *testing.T) {
		sum := md5.Sum([]byte("something else"))
		_, err := cc.NewBlockBlobClient("never").UploadBlobFromURL(ctx, src.URL(), &blockblob.UploadBlobFromURLOptions{SourceContentMD5: sum[:]})
		wantErr(t, err, http.StatusBadRequest, "Md5Mismatch")
		sum = md5.Sum([]byte(sourceContent))
		if _, err := cc.NewBlockBlobClient("checked").UploadBlobFromURL(ctx, src.URL(), &blockblob.UploadBlobFromURLOptions{SourceContentMD5: sum[:]}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("BlobArchived", func(t *testing.T) {
		// Only an asynchronous Copy Blob can wait for a rehydration.
		_, err := cc.NewBlockBlobClient("never").UploadBlobFromURL(ctx, archivedSource(t, env, cc).URL(), nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
	})
	t.Run("CannotVerifyCopySource", func(t *testing.T) {
		_, err := dst.UploadBlobFromURL(ctx, cc.NewBlobClient("absent").URL(), nil)
		wantErr(t, err, http.StatusNotFound, "CannotVerifyCopySource")
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		// Put Blob From URL makes block blobs only.
		r := env.do(t, http.MethodPut, "/box/never", map[string]string{"x-ms-blob-type": "AppendBlob", "x-ms-copy-source": src.URL()}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
	// The destination's condition: give it the tags the checks expect.
	if _, err := dst.SetTags(ctx, teamTags, nil); err != nil {
		t.Fatal(err)
	}
	checkIfTags(t, func(cond string) error {
		_, err := dst.UploadBlobFromURL(ctx, src.URL(), &blockblob.UploadBlobFromURLOptions{Tags: teamTags, AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_CopyBlobFromURL(t *testing.T) {
	cover(t, storage.Blob, "Copy Blob From URL")
	env := newBlobEnv(t)
	cc, src := sourceBlob(t, env)
	ctx := context.Background()
	dst := cc.NewBlobClient("dst")
	t.Run("success", func(t *testing.T) {
		resp, err := dst.CopyFromURL(ctx, src.URL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.CopyStatus != "success" || resp.CopyID == nil {
			t.Errorf("copy status %v", *resp.CopyStatus)
		}
		p, err := dst.GetProperties(ctx, nil)
		if err != nil || *p.Metadata["From"] != "source" || *p.ContentType != "text/plain" {
			t.Errorf("copy keeps the source's metadata and properties: %v, %v", p.Metadata, err)
		}
	})
	t.Run("Md5Mismatch", func(t *testing.T) {
		sum := md5.Sum([]byte("something else"))
		_, err := dst.CopyFromURL(ctx, src.URL(), &blob.CopyFromURLOptions{SourceContentMD5: sum[:]})
		wantErr(t, err, http.StatusBadRequest, "Md5Mismatch")
	})
	t.Run("BlobArchived", func(t *testing.T) {
		_, err := dst.CopyFromURL(ctx, archivedSource(t, env, cc).URL(), &blob.CopyFromURLOptions{Tier: to.Ptr(blob.AccessTierHot)})
		wantErr(t, err, http.StatusConflict, "BlobArchived")
	})
	t.Run("CannotVerifyCopySource", func(t *testing.T) {
		_, err := dst.CopyFromURL(ctx, cc.NewBlobClient("absent").URL(), nil)
		wantErr(t, err, http.StatusNotFound, "CannotVerifyCopySource")
	})
}

func TestBlob_PutBlockFromURL(t *testing.T) {
	cover(t, storage.Blob, "Put Block From URL")
	env := newBlobEnv(t)
	cc, src := sourceBlob(t, env)
	ctx := context.Background()
	dst := cc.NewBlockBlobClient("dst")
	t.Run("success", func(t *testing.T) {
		if _, err := dst.StageBlockFromURL(ctx, blockA, src.URL(), &blockblob.StageBlockFromURLOptions{Range: blob.HTTPRange{Offset: 16, Count: 16}}); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.CommitBlockList(ctx, []string{blockA}, nil); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, dst.BlobClient()); got != sourceContent[16:32] {
			t.Errorf("content %q", got)
		}
	})
	t.Run("Md5Mismatch", func(t *testing.T) {
		sum := md5.Sum([]byte("something else"))
		_, err := dst.StageBlockFromURL(ctx, blockA, src.URL(), &blockblob.StageBlockFromURLOptions{SourceContentValidation: blob.SourceContentValidationTypeMD5(sum[:])})
		wantErr(t, err, http.StatusBadRequest, "Md5Mismatch")
	})
	t.Run("InvalidRange", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box/dst?comp=block&blockid="+blockA, map[string]string{"x-ms-copy-source": src.URL(), "x-ms-source-range": "bytes=1000-2000"}, nil)
		r.want(t, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
		r = env.do(t, http.MethodPut, "/box/dst?comp=block&blockid="+blockA, map[string]string{"x-ms-copy-source": src.URL(), "x-ms-source-range": "bytes=x"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
	t.Run("CannotVerifyCopySource", func(t *testing.T) {
		_, err := dst.StageBlockFromURL(ctx, blockA, cc.NewBlobClient("absent").URL(), nil)
		wantErr(t, err, http.StatusNotFound, "CannotVerifyCopySource")
	})
}

func TestBlob_AppendBlockFromURL(t *testing.T) {
	cover(t, storage.Blob, "Append Block From URL")
	env := newBlobEnv(t)
	cc, src := sourceBlob(t, env)
	ctx := context.Background()
	ac := cc.NewAppendBlobClient("log")
	if _, err := ac.Create(ctx, &appendblob.CreateOptions{Tags: teamTags}); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		for _, off := range []int64{0, 16} {
			resp, err := ac.AppendBlockFromURL(ctx, src.URL(), &appendblob.AppendBlockFromURLOptions{Range: blob.HTTPRange{Offset: off, Count: 16}})
			if err != nil {
				t.Fatal(err)
			}
			if *resp.BlobAppendOffset != map[int64]string{0: "0", 16: "16"}[off] {
				t.Errorf("append offset %s", *resp.BlobAppendOffset)
			}
		}
		if got := readAll(t, ac.BlobClient()); got != sourceContent[:32] {
			t.Errorf("content %q", got)
		}
	})
	t.Run("Md5Mismatch", func(t *testing.T) {
		sum := md5.Sum([]byte("something else"))
		_, err := ac.AppendBlockFromURL(ctx, src.URL(), &appendblob.AppendBlockFromURLOptions{SourceContentValidation: blob.SourceContentValidationTypeMD5(sum[:])})
		wantErr(t, err, http.StatusBadRequest, "Md5Mismatch")
	})
	t.Run("AppendPositionConditionNotMet", func(t *testing.T) {
		_, err := ac.AppendBlockFromURL(ctx, src.URL(), &appendblob.AppendBlockFromURLOptions{
			AppendPositionAccessConditions: &appendblob.AppendPositionAccessConditions{AppendPosition: to.Ptr[int64](1)}})
		wantErr(t, err, http.StatusPreconditionFailed, "AppendPositionConditionNotMet")
		if got := readAll(t, ac.BlobClient()); len(got) != 32 {
			t.Errorf("length after refused appends %d", len(got))
		}
	})
	t.Run("InvalidBlobType", func(t *testing.T) {
		_, err := cc.NewAppendBlobClient("src").AppendBlockFromURL(ctx, src.URL(), nil)
		wantErr(t, err, http.StatusConflict, "InvalidBlobType")
	})
	t.Run("CannotVerifyCopySource", func(t *testing.T) {
		_, err := ac.AppendBlockFromURL(ctx, cc.NewBlobClient("absent").URL(), nil)
		wantErr(t, err, http.StatusNotFound, "CannotVerifyCopySource")
	})
	checkIfTags(t, func(cond string) error {
		_, err := ac.AppendBlockFromURL(ctx, src.URL(), &appendblob.AppendBlockFromURLOptions{Range: blob.HTTPRange{Count: 1}, AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_PutPageFromURL(t *testing.T) {
	cover(t, storage.Blob, "Put Page From URL")
	env := newBlobEnv(t)
	cc, src := sourceBlob(t, env)
	ctx := context.Background()
	pc := cc.NewPageBlobClient("disk")
	if _, err := pc.Create(ctx, 2048, &pageblob.CreateOptions{Tags: teamTags}); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		if _, err := pc.UploadPagesFromURL(ctx, src.URL(), 512, 1024, 512, nil); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, pc.BlobClient())
		if got[1024:1536] != sourceContent[512:] || got[:1024] != strings.Repeat("\x00", 1024) {
			t.Errorf("pages %.40q", got[1024:])
		}
	})
	t.Run("MissingRequiredHeader", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box/disk?comp=page", map[string]string{"x-ms-copy-source": src.URL(), "x-ms-page-write": "update", "x-ms-range": "bytes=0-511"}, nil)
		r.want(t, http.StatusBadRequest, "MissingRequiredHeader")
	})
	t.Run("InvalidHeaderValue", func(t *testing.T) {
		// The source range is as long as the destination's.
		r := env.do(t, http.MethodPut, "/box/disk?comp=page", map[string]string{"x-ms-copy-source": src.URL(), "x-ms-page-write": "update",
			"x-ms-range": "bytes=0-511", "x-ms-source-range": "bytes=0-1023"}, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
	})
	t.Run("Md5Mismatch", func(t *testing.T) {
		sum := md5.Sum([]byte("something else"))
		_, err := pc.UploadPagesFromURL(ctx, src.URL(), 0, 0, 512, &pageblob.UploadPagesFromURLOptions{SourceContentValidation: blob.SourceContentValidationTypeMD5(sum[:])})
		wantErr(t, err, http.StatusBadRequest, "Md5Mismatch")
	})
	t.Run("CannotVerifyCopySource", func(t *testing.T) {
		_, err := pc.UploadPagesFromURL(ctx, cc.NewBlobClient("absent").URL(), 0, 0, 512, nil)
		wantErr(t, err, http.StatusNotFound, "CannotVerifyCopySource")
	})
	checkIfTags(t, func(cond string) error {
		_, err := pc.UploadPagesFromURL(ctx, src.URL(), 0, 0, 512, &pageblob.UploadPagesFromURLOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_AbortCopyBlob(t *testing.T) {
	cover(t, storage.Blob, "Abort Copy Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	cold := archivedSource(t, env, cc)
	dst := cc.NewBlobClient("dst")
	// A copy out of Archive is the one that stays pending (it rehydrates
	// the destination); Standard priority is the slower one.
	resp, err := dst.StartCopyFromURL(ctx, cold.URL(), &blob.StartCopyFromURLOptions{
		Tier: to.Ptr(blob.AccessTierHot), Metadata: map[string]*string{"kept": to.Ptr("yes")}})
	if err != nil {
		t.Fatal(err)
	}
	if *resp.CopyStatus != blob.CopyStatusTypePending {
		t.Fatalf("copy out of Archive: status %s", *resp.CopyStatus)
	}
	t.Run("CopyIdMismatch", func(t *testing.T) {
		_, err := dst.AbortCopyFromURL(ctx, "00000000-0000-0000-0000-000000000000", nil)
		wantErr(t, err, http.StatusConflict, "CopyIdMismatch")
	})
	t.Run("success", func(t *testing.T) {
		if _, err := dst.AbortCopyFromURL(ctx, *resp.CopyID, nil); err != nil {
			t.Fatal(err)
		}
		p, err := dst.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *p.CopyStatus != blob.CopyStatusTypeAborted || *p.ContentLength != 0 || p.Metadata["Kept"] == nil || p.ArchiveStatus != nil {
			t.Errorf("after abort: status %s length %d metadata %v archive status %v", *p.CopyStatus, *p.ContentLength, p.Metadata, p.ArchiveStatus)
		}
	})
	t.Run("NoPendingCopyOperation", func(t *testing.T) {
		_, err := dst.AbortCopyFromURL(ctx, *resp.CopyID, nil)
		wantErr(t, err, http.StatusConflict, "NoPendingCopyOperation")
	})
	t.Run("MissingRequiredQueryParameter", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box/dst?comp=copy", map[string]string{"x-ms-copy-action": "abort"}, nil)
		r.want(t, http.StatusBadRequest, "MissingRequiredQueryParameter")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlobClient("absent").AbortCopyFromURL(ctx, *resp.CopyID, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}

// TestBlob_CopyBlobFromArchive: Copy Blob of an archived blob to an online
// tier is pending while the destination rehydrates, then completes.
func TestBlob_CopyBlobFromArchive(t *testing.T) {
	cover(t, storage.Blob, "Copy Blob")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	cold := archivedSource(t, env, cc)
	dst := cc.NewBlobClient("warm")
	t.Run("BlobArchived", func(t *testing.T) {
		// Without an online tier there is nothing to rehydrate to.
		_, err := dst.StartCopyFromURL(ctx, cold.URL(), nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
		_, err = dst.StartCopyFromURL(ctx, cold.URL(), &blob.StartCopyFromURLOptions{Tier: to.Ptr(blob.AccessTierArchive)})
		wantErr(t, err, http.StatusConflict, "BlobArchived")
	})
	t.Run("success", func(t *testing.T) {
		resp, err := dst.StartCopyFromURL(ctx, cold.URL(), &blob.StartCopyFromURLOptions{
			Tier: to.Ptr(blob.AccessTierCool), RehydratePriority: to.Ptr(blob.RehydratePriorityHigh)})
		if err != nil {
			t.Fatal(err)
		}
		if *resp.CopyStatus != blob.CopyStatusTypePending {
			t.Errorf("status %s", *resp.CopyStatus)
		}
		p, err := dst.GetProperties(ctx, nil)
		if err != nil || *p.CopyStatus != blob.CopyStatusTypePending || p.ArchiveStatus == nil || *p.ArchiveStatus != "rehydrate-pending-to-cool" {
			t.Fatalf("while rehydrating: %v %v, %v", p.CopyStatus, p.ArchiveStatus, err)
		}
		_, err = dst.DownloadStream(ctx, nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
		// High priority completes within seconds here.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if p, err = dst.GetProperties(ctx, nil); err != nil || *p.CopyStatus != blob.CopyStatusTypePending {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || *p.CopyStatus != blob.CopyStatusTypeSuccess || *p.AccessTier != "Cool" {
			t.Fatalf("after rehydration: %v %v, %v", p.CopyStatus, p.AccessTier, err)
		}
		if got := readAll(t, dst); got != "frozen" {
			t.Errorf("content %q", got)
		}
		// The source stays archived.
		_, err = cold.DownloadStream(ctx, nil)
		wantErr(t, err, http.StatusConflict, "BlobArchived")
	})
}
