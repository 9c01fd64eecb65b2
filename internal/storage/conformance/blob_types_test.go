package conformance

// Blob service: operations of one blob type (block, page, append).

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"

	"github.com/weftcloud/weft/internal/storage"
)

var blockA = base64.StdEncoding.EncodeToString([]byte("block-a"))

func TestBlob_PutBlockList(t *testing.T) {
	cover(t, storage.Blob, "Put Block List")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := cc.NewBlockBlobClient("b")
	ctx := context.Background()
	stage := func(t *testing.T) {
		t.Helper()
		if _, err := bc.StageBlock(ctx, blockA, body("hello"), nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("success", func(t *testing.T) {
		stage(t)
		if _, err := bc.CommitBlockList(ctx, []string{blockA}, &blockblob.CommitBlockListOptions{Tags: teamTags}); err != nil {
			t.Fatal(err)
		}
		p, err := bc.GetProperties(ctx, nil)
		if err != nil || *p.ContentLength != 5 || *p.TagCount != 2 {
			t.Errorf("committed blob: %v, %v", p.ContentLength, err)
		}
	})
	t.Run("InvalidBlockList", func(t *testing.T) {
		_, err := bc.CommitBlockList(ctx, []string{base64.StdEncoding.EncodeToString([]byte("never-staged"))}, nil)
		wantErr(t, err, http.StatusBadRequest, "InvalidBlockList")
	})
	checkIfTags(t, func(cond string) error {
		stage(t)
		_, err := bc.CommitBlockList(ctx, []string{blockA}, &blockblob.CommitBlockListOptions{Tags: teamTags, AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_GetBlockList(t *testing.T) {
	cover(t, storage.Blob, "Get Block List")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := cc.NewBlockBlobClient("b")
	ctx := context.Background()
	if _, err := bc.StageBlock(ctx, blockA, body("hello"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.CommitBlockList(ctx, []string{blockA}, &blockblob.CommitBlockListOptions{Tags: teamTags}); err != nil {
		t.Fatal(err)
	}
	t.Run("success", func(t *testing.T) {
		got, err := bc.GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.CommittedBlocks) != 1 || *got.CommittedBlocks[0].Name != blockA || *got.CommittedBlocks[0].Size != 5 {
			t.Errorf("committed blocks %+v", got.CommittedBlocks)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewBlockBlobClient("absent").GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := bc.GetBlockList(ctx, blockblob.BlockListTypeAll, &blockblob.GetBlockListOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

// pageBlob creates a 1 KiB page blob with teamTags.
func pageBlob(t *testing.T, env *blobEnv) *pageblob.Client {
	t.Helper()
	pc := env.container(t, "box").NewPageBlobClient("p")
	if _, err := pc.Create(context.Background(), 1024, &pageblob.CreateOptions{Tags: teamTags}); err != nil {
		t.Fatal(err)
	}
	return pc
}

func TestBlob_PutPage(t *testing.T) {
	cover(t, storage.Blob, "Put Page")
	env := newBlobEnv(t)
	pc := pageBlob(t, env)
	ctx := context.Background()
	page := strings.Repeat("p", 512)
	t.Run("success", func(t *testing.T) {
		if _, err := pc.UploadPages(ctx, body(page), blob.HTTPRange{Offset: 512, Count: 512}, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("InvalidPageRange", func(t *testing.T) {
		// Pages are aligned to 512 bytes (the SDK checks the body, not the range).
		r := env.do(t, http.MethodPut, "/box/p?comp=page", map[string]string{"x-ms-page-write": "update", "x-ms-range": "bytes=1-512"}, []byte(page))
		if r.status != http.StatusRequestedRangeNotSatisfiable && r.status != http.StatusBadRequest {
			t.Errorf("unaligned page: %d %s", r.status, r.header.Get("x-ms-error-code"))
		}
	})
	checkIfTags(t, func(cond string) error {
		_, err := pc.UploadPages(ctx, body(page), blob.HTTPRange{Offset: 0, Count: 512}, &pageblob.UploadPagesOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_GetPageRanges(t *testing.T) {
	cover(t, storage.Blob, "Get Page Ranges")
	env := newBlobEnv(t)
	pc := pageBlob(t, env)
	ctx := context.Background()
	if _, err := pc.UploadPages(ctx, body(strings.Repeat("p", 512)), blob.HTTPRange{Offset: 512, Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	ranges := func(cond string) (int, error) {
		var opts *pageblob.GetPageRangesOptions
		if cond != "" {
			opts = &pageblob.GetPageRangesOptions{AccessConditions: ifTagsAccess(cond)}
		}
		page, err := pc.NewGetPageRangesPager(opts).NextPage(ctx)
		return len(page.PageRange), err
	}
	t.Run("success", func(t *testing.T) {
		n, err := ranges("")
		if err != nil || n != 1 {
			t.Errorf("%d ranges, %v", n, err)
		}
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("box").NewPageBlobClient("absent").NewGetPageRangesPager(nil).NextPage(ctx)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
	checkIfTags(t, func(cond string) error {
		_, err := ranges(cond)
		return err
	})
}

// appendBlob creates an append blob with teamTags.
func appendBlob(t *testing.T, env *blobEnv) *appendblob.Client {
	t.Helper()
	ac := env.container(t, "box").NewAppendBlobClient("a")
	if _, err := ac.Create(context.Background(), &appendblob.CreateOptions{Tags: teamTags}); err != nil {
		t.Fatal(err)
	}
	return ac
}

func TestBlob_AppendBlock(t *testing.T) {
	cover(t, storage.Blob, "Append Block")
	env := newBlobEnv(t)
	ac := appendBlob(t, env)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		resp, err := ac.AppendBlock(ctx, body("one"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.BlobAppendOffset != "0" || *resp.BlobCommittedBlockCount != 1 {
			t.Errorf("append offset %s count %d", *resp.BlobAppendOffset, *resp.BlobCommittedBlockCount)
		}
	})
	t.Run("zero length", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box/a?comp=appendblock", nil, nil)
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
		if r.header.Get("x-ms-invalid-header-name") != "Content-Length" {
			t.Errorf("x-ms-invalid-header-name %q", r.header.Get("x-ms-invalid-header-name"))
		}
	})
	t.Run("InvalidBlobType", func(t *testing.T) {
		env.upload(t, env.svc.NewContainerClient("box"), "block", "x", nil)
		_, err := env.svc.NewContainerClient("box").NewAppendBlobClient("block").AppendBlock(ctx, body("x"), nil)
		wantErr(t, err, http.StatusConflict, "InvalidBlobType")
	})
	checkIfTags(t, func(cond string) error {
		_, err := ac.AppendBlock(ctx, body("two"), &appendblob.AppendBlockOptions{AccessConditions: ifTagsAccess(cond)})
		return err
	})
}

func TestBlob_AppendBlobSeal(t *testing.T) {
	cover(t, storage.Blob, "Append Blob Seal")
	env := newBlobEnv(t)
	ac := appendBlob(t, env)
	cc := env.svc.NewContainerClient("box")
	ctx := context.Background()
	if _, err := ac.AppendBlock(ctx, body("one"), nil); err != nil {
		t.Fatal(err)
	}
	t.Run("AppendPositionConditionNotMet", func(t *testing.T) {
		_, err := ac.Seal(ctx, &appendblob.SealOptions{AppendPositionAccessConditions: &appendblob.AppendPositionAccessConditions{AppendPosition: to.Ptr[int64](1)}})
		wantErr(t, err, http.StatusPreconditionFailed, "AppendPositionConditionNotMet")
	})
	t.Run("ConditionNotMet", func(t *testing.T) {
		_, err := ac.Seal(ctx, &appendblob.SealOptions{AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(azcore.ETag(`"0x1"`))}}})
		wantErr(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	})
	t.Run("success", func(t *testing.T) {
		// Sealing keeps ETag and Last-Modified, and may be repeated.
		unsealed, err := ac.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if unsealed.IsSealed == nil || *unsealed.IsSealed {
			t.Errorf("x-ms-blob-sealed before seal: %v", unsealed.IsSealed)
		}
		if _, err := ac.Seal(ctx, nil); err != nil {
			t.Fatal(err)
		}
		before, err := ac.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if before.IsSealed == nil || !*before.IsSealed || *before.ETag != *unsealed.ETag {
			t.Fatalf("after seal: sealed %v, ETag %s (was %s)", before.IsSealed, *before.ETag, *unsealed.ETag)
		}
		r := env.do(t, http.MethodPut, "/box/a?comp=seal", nil, nil)
		r.want(t, http.StatusOK, "")
		if r.header.Get("x-ms-blob-sealed") != "true" || r.header.Get("ETag") != string(*before.ETag) {
			t.Errorf("second seal: sealed %q ETag %q (was %q)", r.header.Get("x-ms-blob-sealed"), r.header.Get("ETag"), *before.ETag)
		}
		page, err := cc.NewListBlobsFlatPager(nil).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Segment.BlobItems) != 1 || page.Segment.BlobItems[0].Properties.IsSealed == nil || !*page.Segment.BlobItems[0].Properties.IsSealed {
			t.Errorf("listing does not show the blob sealed")
		}
	})
	t.Run("BlobIsSealed", func(t *testing.T) {
		_, err := ac.AppendBlock(ctx, body("two"), nil)
		wantErr(t, err, http.StatusConflict, "BlobIsSealed")
		got, err := ac.GetProperties(ctx, nil)
		if err != nil || *got.ContentLength != 3 {
			t.Errorf("length after a refused append: %v, %v", got.ContentLength, err)
		}
	})
	t.Run("copy", func(t *testing.T) {
		// A copy is sealed only when x-ms-seal-blob asks.
		for _, seal := range []bool{false, true} {
			dst := cc.NewAppendBlobClient("copy")
			if _, err := dst.StartCopyFromURL(ctx, ac.URL(), &blob.StartCopyFromURLOptions{SealBlob: to.Ptr(seal)}); err != nil {
				t.Fatal(err)
			}
			p, err := dst.GetProperties(ctx, nil)
			if err != nil || p.IsSealed == nil || *p.IsSealed != seal {
				t.Errorf("copy with x-ms-seal-blob %v: sealed %v, %v", seal, p.IsSealed, err)
			}
		}
	})
	t.Run("InvalidBlobType", func(t *testing.T) {
		env.upload(t, cc, "block", "x", nil)
		_, err := cc.NewAppendBlobClient("block").Seal(ctx, nil)
		wantErr(t, err, http.StatusConflict, "InvalidBlobType")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		_, err := cc.NewAppendBlobClient("absent").Seal(ctx, nil)
		wantErr(t, err, http.StatusNotFound, "BlobNotFound")
	})
}

func TestBlob_IncrementalCopyBlob(t *testing.T) {
	cover(t, storage.Blob, "Incremental Copy Blob")
	env := newBlobEnv(t)
	pc := pageBlob(t, env)
	cc := env.svc.NewContainerClient("box")
	ctx := context.Background()
	page := func(c byte) io.ReadSeekCloser { return body(strings.Repeat(string(c), 512)) }
	snapshot := func(t *testing.T) string {
		t.Helper()
		s, err := pc.CreateSnapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return *s.Snapshot
	}
	if _, err := pc.UploadPages(ctx, page('a'), blob.HTTPRange{Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t)
	if _, err := pc.UploadPages(ctx, page('b'), blob.HTTPRange{Offset: 512, Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	second := snapshot(t)
	backup := cc.NewPageBlobClient("backup")
	destSnapshot := func(t *testing.T) *pageblob.Client {
		t.Helper()
		p, err := backup.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.IsIncrementalCopy == nil || !*p.IsIncrementalCopy || p.DestinationSnapshot == nil || *p.CopyStatus != blob.CopyStatusTypeSuccess {
			t.Fatalf("destination: incremental %v, destination snapshot %v, status %v", p.IsIncrementalCopy, p.DestinationSnapshot, p.CopyStatus)
		}
		sc, err := backup.WithSnapshot(*p.DestinationSnapshot)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	t.Run("success", func(t *testing.T) {
		resp, err := backup.StartCopyIncremental(ctx, pc.URL(), first, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.CopyStatus != blob.CopyStatusTypeSuccess {
			t.Errorf("status %s", *resp.CopyStatus)
		}
		if got := readAll(t, destSnapshot(t).BlobClient()); got != strings.Repeat("a", 512)+strings.Repeat("\x00", 512) {
			t.Errorf("first copy %.20q", got)
		}
		// A later snapshot brings the changes since.
		if _, err := backup.StartCopyIncremental(ctx, pc.URL(), second, nil); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, destSnapshot(t).BlobClient()); got[512:] != strings.Repeat("b", 512) {
			t.Errorf("second copy %.20q", got[512:])
		}
	})
	t.Run("IncrementalCopyOfEarlierSnapshotNotAllowed", func(t *testing.T) {
		_, err := backup.StartCopyIncremental(ctx, pc.URL(), first, nil)
		wantErr(t, err, http.StatusConflict, "IncrementalCopyOfEarlierSnapshotNotAllowed")
	})
	t.Run("OperationNotAllowedOnIncrementalCopyBlob", func(t *testing.T) {
		_, err := backup.UploadPages(ctx, page('x'), blob.HTTPRange{Count: 512}, nil)
		wantErr(t, err, http.StatusConflict, "OperationNotAllowedOnIncrementalCopyBlob")
		_, err = backup.SetMetadata(ctx, map[string]*string{"k": to.Ptr("v")}, nil)
		wantErr(t, err, http.StatusConflict, "OperationNotAllowedOnIncrementalCopyBlob")
		_, err = backup.Resize(ctx, 4096, nil)
		wantErr(t, err, http.StatusConflict, "OperationNotAllowedOnIncrementalCopyBlob")
		_, err = cc.NewBlockBlobClient("backup").Upload(ctx, body("x"), nil)
		wantErr(t, err, http.StatusConflict, "OperationNotAllowedOnIncrementalCopyBlob")
	})
	t.Run("IncrementalCopyBlobMismatch", func(t *testing.T) {
		other := cc.NewPageBlobClient("other")
		if _, err := other.Create(ctx, 512, nil); err != nil {
			t.Fatal(err)
		}
		s, err := other.CreateSnapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = backup.StartCopyIncremental(ctx, other.URL(), *s.Snapshot, nil)
		wantErr(t, err, http.StatusConflict, "IncrementalCopyBlobMismatch")
		// Nor may a blob that is not an incremental copy become one.
		_, err = other.StartCopyIncremental(ctx, pc.URL(), second, nil)
		wantErr(t, err, http.StatusConflict, "IncrementalCopyBlobMismatch")
	})
	t.Run("IncrementalCopySourceMustBeSnapshot", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box/fresh?comp=incrementalcopy", map[string]string{"x-ms-copy-source": pc.URL()}, nil)
		r.want(t, http.StatusConflict, "IncrementalCopySourceMustBeSnapshot")
	})
	t.Run("InvalidBlobType", func(t *testing.T) {
		bc := env.upload(t, cc, "block", "x", nil)
		s, err := bc.CreateSnapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cc.NewPageBlobClient("fresh").StartCopyIncremental(ctx, bc.URL(), *s.Snapshot, nil)
		wantErr(t, err, http.StatusConflict, "InvalidBlobType")
	})
	t.Run("CannotVerifyCopySource", func(t *testing.T) {
		_, err := cc.NewPageBlobClient("fresh").StartCopyIncremental(ctx, pc.URL(), "2020-01-01T00:00:00.0000000Z", nil)
		wantErr(t, err, http.StatusNotFound, "CannotVerifyCopySource")
	})
}
