package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/google/go-cmp/cmp"
)

func TestBlobLease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "leases")
	if _, err := e.client.UploadBuffer(ctx, "leases", "b", []byte("v1"), nil); err != nil {
		t.Fatal(err)
	}
	bc := cc.NewBlockBlobClient("b")
	lc, err := lease.NewBlobClient(bc, &lease.BlobClientOptions{LeaseID: to.Ptr("11111111-1111-1111-1111-111111111111")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AcquireLease(ctx, -1, nil); err != nil {
		t.Fatal(err)
	}
	_, err = bc.Upload(ctx, nopCloser("v2"), nil)
	wantCode(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
	_, err = bc.Upload(ctx, nopCloser("v2"), &blockblob.UploadOptions{AccessConditions: &blob.AccessConditions{
		LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: to.Ptr("22222222-1111-1111-1111-111111111111")}}})
	wantCode(t, err, http.StatusPreconditionFailed, "LeaseIdMismatchWithBlobOperation")
	_, err = bc.Delete(ctx, nil)
	wantCode(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
	withLease := &blob.AccessConditions{LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: lc.LeaseID()}}
	if _, err := bc.Upload(ctx, nopCloser("v2"), &blockblob.UploadOptions{AccessConditions: withLease}); err != nil {
		t.Fatal(err)
	}
	props, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.LeaseState != lease.StateTypeLeased || *props.LeaseStatus != lease.StatusTypeLocked || *props.LeaseDuration != lease.DurationTypeInfinite {
		t.Fatalf("lease props %s %s %s", *props.LeaseState, *props.LeaseStatus, *props.LeaseDuration)
	}
	other, _ := lease.NewBlobClient(bc, &lease.BlobClientOptions{LeaseID: to.Ptr("33333333-1111-1111-1111-111111111111")})
	_, err = other.AcquireLease(ctx, 20, nil)
	wantCode(t, err, http.StatusConflict, "LeaseAlreadyPresent")
	if _, err := lc.RenewLease(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.ChangeLease(ctx, "44444444-1111-1111-1111-111111111111", nil); err != nil {
		t.Fatal(err)
	}
	br, err := lc.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to.Ptr[int32](0)})
	if err != nil {
		t.Fatal(err)
	}
	if *br.LeaseTime != 0 {
		t.Errorf("lease time %d", *br.LeaseTime)
	}
	props, _ = bc.GetProperties(ctx, nil)
	if *props.LeaseState != lease.StateTypeBroken {
		t.Fatalf("state after break %s", *props.LeaseState)
	}
	if _, err := bc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = other.AcquireLease(ctx, 5, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
}

func TestContainerLease(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "leased")
	lc, err := lease.NewContainerClient(cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lc.AcquireLease(ctx, 10, nil)
	wantCode(t, err, http.StatusBadRequest, "InvalidHeaderValue")
	if _, err := lc.AcquireLease(ctx, 15, nil); err != nil {
		t.Fatal(err)
	}
	_, err = cc.Delete(ctx, nil)
	wantCode(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
	br, err := lc.BreakLease(ctx, &lease.ContainerBreakOptions{BreakPeriod: to.Ptr[int32](10)})
	if err != nil {
		t.Fatal(err)
	}
	if *br.LeaseTime != 10 {
		t.Errorf("lease time %d", *br.LeaseTime)
	}
	props, _ := cc.GetProperties(ctx, nil)
	if *props.LeaseState != lease.StateTypeBreaking {
		t.Fatalf("state %s", *props.LeaseState)
	}
	if _, err := lc.ReleaseLease(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestConditions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "conds")
	up, err := cc.NewBlockBlobClient("b").Upload(ctx, nopCloser("v1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	etag, mod := *up.ETag, *up.LastModified
	bc := cc.NewBlobClient("b")
	past, future := mod.Add(-time.Hour), mod.Add(time.Hour)
	bad := azcore.ETag(`"0x1"`)
	for _, tc := range []struct {
		name      string
		mac       blob.ModifiedAccessConditions
		getStatus int // 0 succeeds
		putStatus int
	}{
		{"if-match", blob.ModifiedAccessConditions{IfMatch: &etag}, 0, 0},
		{"if-match-miss", blob.ModifiedAccessConditions{IfMatch: &bad}, 412, 412},
		{"if-match-star", blob.ModifiedAccessConditions{IfMatch: to.Ptr(azcore.ETagAny)}, 0, 0},
		{"if-none-match", blob.ModifiedAccessConditions{IfNoneMatch: &etag}, 304, 412},
		{"if-none-match-miss", blob.ModifiedAccessConditions{IfNoneMatch: &bad}, 0, 0},
		{"if-none-match-star", blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}, 304, 409},
		{"if-modified-since-past", blob.ModifiedAccessConditions{IfModifiedSince: &past}, 0, 0},
		{"if-modified-since-future", blob.ModifiedAccessConditions{IfModifiedSince: &future}, 304, 412},
		{"if-unmodified-since-past", blob.ModifiedAccessConditions{IfUnmodifiedSince: &past}, 412, 412},
		{"if-unmodified-since-future", blob.ModifiedAccessConditions{IfUnmodifiedSince: &future}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac := &blob.AccessConditions{ModifiedAccessConditions: &tc.mac}
			// Get Blob answers 304 as a success to the SDK; HEAD reports it.
			_, err := bc.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: ac})
			if tc.getStatus == 0 && err != nil {
				t.Fatalf("get: %v", err)
			} else if tc.getStatus != 0 {
				wantCode(t, err, tc.getStatus, "")
			}
			// Metadata writes do not move Last-Modified past "future".
			_, err = bc.SetMetadata(ctx, map[string]*string{"n": to.Ptr(tc.name)}, &blob.SetMetadataOptions{AccessConditions: ac})
			if tc.putStatus == 0 && err != nil {
				t.Fatalf("set metadata: %v", err)
			} else if tc.putStatus != 0 {
				if err == nil {
					t.Fatalf("set metadata succeeded, want %d", tc.putStatus)
				}
			}
			if err == nil {
				props, _ := bc.GetProperties(ctx, nil)
				etag = *props.ETag
			}
		})
	}
	// If-None-Match: * on upload creates only.
	_, err = cc.NewBlockBlobClient("b").Upload(ctx, nopCloser("v2"), &blockblob.UploadOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
	wantCode(t, err, http.StatusConflict, "BlobAlreadyExists")
	_, err = cc.NewBlockBlobClient("new").Upload(ctx, nopCloser("v2"), &blockblob.UploadOptions{AccessConditions: &blob.AccessConditions{
		ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}}})
	if err != nil {
		t.Fatal(err)
	}
	// Containers take If-Modified-Since on metadata writes.
	_, err = cc.SetMetadata(ctx, &container.SetMetadataOptions{
		ModifiedAccessConditions: &container.ModifiedAccessConditions{IfModifiedSince: &future}})
	wantCode(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
}

func TestChecksums(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "sums")
	data := []byte("hello, checksums")
	good := md5.Sum(data)
	crc := crc64.Checksum(data, crc64.MakeTable(0x9A6C9329AC4BC9B5))
	bb := cc.NewBlockBlobClient("b")
	resp, err := bb.Upload(ctx, nopCloser(string(data)), &blockblob.UploadOptions{TransactionalValidation: blob.TransferValidationTypeMD5(good[:])})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.ContentMD5, good[:]) {
		t.Fatalf("returned md5 %x", resp.ContentMD5)
	}
	badSum := md5.Sum([]byte("other"))
	_, err = bb.Upload(ctx, nopCloser(string(data)), &blockblob.UploadOptions{TransactionalValidation: blob.TransferValidationTypeMD5(badSum[:])})
	wantCode(t, err, http.StatusBadRequest, "Md5Mismatch")
	sr, err := bb.StageBlock(ctx, blockID(1), nopCloser(string(data)), &blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeCRC64(crc)})
	if err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint64(sr.ContentCRC64) != crc {
		t.Fatalf("returned crc %x", sr.ContentCRC64)
	}
	_, err = bb.StageBlock(ctx, blockID(2), nopCloser(string(data)), &blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeCRC64(crc + 1)})
	wantCode(t, err, http.StatusBadRequest, "Crc64Mismatch")
	_, err = bb.StageBlock(ctx, blockID(2), nopCloser(string(data)), &blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeComputeCRC64()})
	if err != nil {
		t.Fatal(err)
	}
	// A large body (streamed to a file) is checked as well, and leaves nothing.
	big := randBytes(1<<20, 9)
	_, err = cc.NewBlockBlobClient("big").Upload(ctx, streaming.NopCloser(bytes.NewReader(big)), &blockblob.UploadOptions{TransactionalValidation: blob.TransferValidationTypeMD5(badSum[:])})
	wantCode(t, err, http.StatusBadRequest, "Md5Mismatch")
	ab := cc.NewAppendBlobClient("a")
	if _, err := ab.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ab.AppendBlock(ctx, nopCloser(string(data)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, e.svc)
}

func TestSnapshotsAndDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "snaps")
	bc := cc.NewBlockBlobClient("b")
	if _, err := bc.Upload(ctx, nopCloser("v1"), nil); err != nil {
		t.Fatal(err)
	}
	s1, err := bc.CreateSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bc.Upload(ctx, nopCloser("v2"), nil); err != nil {
		t.Fatal(err)
	}
	s2, err := bc.CreateSnapshot(ctx, &blob.CreateSnapshotOptions{Metadata: map[string]*string{"Tag": to.Ptr("second")}})
	if err != nil {
		t.Fatal(err)
	}
	if *s1.Snapshot == *s2.Snapshot {
		t.Fatal("snapshots share a timestamp")
	}
	snap1, _ := bc.WithSnapshot(*s1.Snapshot)
	if got := download(t, ctx, snap1.BlobClient(), nil); string(got) != "v1" {
		t.Fatalf("snapshot content %q", got)
	}
	_, err = bc.Delete(ctx, nil)
	wantCode(t, err, http.StatusConflict, "SnapshotsPresent")
	if _, err := snap1.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = snap1.GetProperties(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	if _, err := bc.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeOnly)}); err != nil {
		t.Fatal(err)
	}
	if got := download(t, ctx, bc.BlobClient(), nil); string(got) != "v2" {
		t.Fatalf("base content %q", got)
	}
	if _, err := bc.CreateSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: to.Ptr(blob.DeleteSnapshotsOptionTypeInclude)}); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, e.svc)
}

func TestCopy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "copies")
	data := randBytes(300_000, 5)
	if _, err := e.client.UploadBuffer(ctx, "copies", "src", data, &azblob.UploadBufferOptions{
		Metadata: map[string]*string{"From": to.Ptr("src")}, HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("image/png")}}); err != nil {
		t.Fatal(err)
	}
	src := cc.NewBlobClient("src")
	dst := cc.NewBlobClient("dst")
	resp, err := dst.StartCopyFromURL(ctx, src.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *resp.CopyStatus != blob.CopyStatusTypeSuccess || *resp.CopyID == "" {
		t.Fatalf("copy status %v id %v", resp.CopyStatus, resp.CopyID)
	}
	props, err := dst.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.CopyStatus != blob.CopyStatusTypeSuccess || *props.CopyID != *resp.CopyID || *props.ContentType != "image/png" || props.Metadata["From"] == nil {
		t.Fatalf("copy props %+v", props)
	}
	_, err = dst.AbortCopyFromURL(ctx, *resp.CopyID, nil)
	wantCode(t, err, http.StatusConflict, "NoPendingCopyOperation")
	sync, err := cc.NewBlockBlobClient("sync").CopyFromURL(ctx, src.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *sync.CopyStatus != "success" {
		t.Fatalf("sync copy status %v", sync.CopyStatus)
	}
	// Deleting the source leaves the copies whole.
	if _, err := src.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dst", "sync"} {
		if got := download(t, ctx, cc.NewBlobClient(name), nil); !bytes.Equal(got, data) {
			t.Fatalf("%s differs", name)
		}
	}
	_, err = dst.StartCopyFromURL(ctx, src.URL(), nil)
	wantCode(t, err, http.StatusNotFound, "CannotVerifyCopySource")

	// Page and append blobs copy their bytes.
	pb := cc.NewPageBlobClient("disk")
	if _, err := pb.Create(ctx, 8192, nil); err != nil {
		t.Fatal(err)
	}
	page := randBytes(512, 7)
	if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(page)), blob.HTTPRange{Offset: 1024, Count: 512}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlobClient("disk2").StartCopyFromURL(ctx, pb.URL(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := pb.ClearPages(ctx, blob.HTTPRange{Offset: 0, Count: 8192}, nil); err != nil {
		t.Fatal(err)
	}
	got := download(t, ctx, cc.NewBlobClient("disk2"), nil)
	if len(got) != 8192 || !bytes.Equal(got[1024:1536], page) {
		t.Fatal("page blob copy differs")
	}
	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, e.svc)
}

func TestListBlobs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "tree")
	names := []string{"a.txt", "dir/x.txt", "dir/y.txt", "dir/sub/z.txt", "e.txt", "photos/1.jpg"}
	for _, n := range names {
		if _, err := e.client.UploadBuffer(ctx, "tree", n, []byte(n), &azblob.UploadBufferOptions{Metadata: map[string]*string{"Name": to.Ptr(strings.ReplaceAll(n, "/", "_"))}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cc.NewBlobClient("a.txt").CreateSnapshot(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("pending").StageBlock(ctx, blockID(1), nopCloser("p"), nil); err != nil {
		t.Fatal(err)
	}

	// Flat listing with paging, snapshots and uncommitted blobs.
	var got []string
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{MaxResults: to.Ptr[int32](3),
		Include: container.ListBlobsInclude{Snapshots: true, Metadata: true, UncommittedBlobs: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			n := *b.Name
			if b.Snapshot != nil && *b.Snapshot != "" {
				n += "@snap"
			}
			if n == "dir/x.txt" && (b.Metadata["name"] == nil || *b.Metadata["name"] != "dir_x.txt") {
				t.Errorf("metadata %v", b.Metadata)
			}
			got = append(got, n)
		}
	}
	want := []string{"a.txt", "a.txt@snap", "dir/sub/z.txt", "dir/x.txt", "dir/y.txt", "e.txt", "pending", "photos/1.jpg"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("flat listing (-want +got):\n%s", diff)
	}

	// Hierarchy: virtual folders.
	hier := func(prefix string, max int32) []string {
		var out []string
		p := cc.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{Prefix: to.Ptr(prefix), MaxResults: to.Ptr(max)})
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, bp := range page.Segment.BlobPrefixes {
				out = append(out, *bp.Name)
			}
			for _, b := range page.Segment.BlobItems {
				out = append(out, *b.Name)
			}
		}
		return out
	}
	if diff := cmp.Diff([]string{"a.txt", "dir/", "e.txt", "photos/"}, sortStrings(hier("", 2))); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"dir/sub/", "dir/x.txt", "dir/y.txt"}, sortStrings(hier("dir/", 5000))); diff != "" {
		t.Errorf("dir/ (-want +got):\n%s", diff)
	}
	_, err := e.client.ServiceClient().NewContainerClient("missing").NewListBlobsFlatPager(nil).NextPage(ctx)
	wantCode(t, err, http.StatusNotFound, "ContainerNotFound")
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestServiceProperties(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sc := e.client.ServiceClient()
	rule := &service.CORSRule{AllowedOrigins: to.Ptr("https://example.com"), AllowedMethods: to.Ptr("GET,PUT"),
		AllowedHeaders: to.Ptr("x-ms-meta-*"), ExposedHeaders: to.Ptr("x-ms-request-id"), MaxAgeInSeconds: to.Ptr[int32](60)}
	if _, err := sc.SetProperties(ctx, &service.SetPropertiesOptions{CORS: []*service.CORSRule{rule}}); err != nil {
		t.Fatal(err)
	}
	props, err := sc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(props.CORS) != 1 || *props.CORS[0].AllowedOrigins != "https://example.com" || *props.CORS[0].MaxAgeInSeconds != 60 {
		t.Fatalf("cors %+v", props.CORS)
	}
	if props.HourMetrics == nil || props.Logging == nil {
		t.Fatalf("metrics/logging missing: %+v", props)
	}
	rules := e.svc.CORSRules("devstoreaccount1")
	if len(rules) != 1 || rules[0].AllowedMethods[1] != "PUT" {
		t.Fatalf("CORSRules = %+v", rules)
	}
	info, err := sc.GetAccountInfo(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *info.SKUName == "" || *info.AccountKind == "" {
		t.Fatalf("account info %+v", info)
	}
	_, err = sc.SetProperties(ctx, &service.SetPropertiesOptions{CORS: []*service.CORSRule{{AllowedOrigins: to.Ptr("*"), AllowedMethods: to.Ptr("FETCH")}}})
	wantCode(t, err, http.StatusBadRequest, "InvalidXmlDocument")
}

func TestTags(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "tagged")
	bb := cc.NewBlockBlobClient("b")
	if _, err := bb.Upload(ctx, nopCloser("x"), &blockblob.UploadOptions{Tags: map[string]string{"env": "dev", "team": "storage"}}); err != nil {
		t.Fatal(err)
	}
	got, err := bb.GetTags(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.BlobTagSet) != 2 || *got.BlobTagSet[0].Key != "env" || *got.BlobTagSet[1].Value != "storage" {
		t.Fatalf("tags %+v", got.BlobTagSet)
	}
	if _, err := bb.SetTags(ctx, map[string]string{"only": "one"}, nil); err != nil {
		t.Fatal(err)
	}
	props, err := bb.GetProperties(ctx, nil)
	if err != nil || props.TagCount == nil || *props.TagCount != 1 {
		t.Fatalf("tag count %v, %v", props.TagCount, err)
	}
	page, err := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Tags: true}}).NextPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := page.Segment.BlobItems[0]; b.BlobTags == nil || len(b.BlobTags.BlobTagSet) != 1 || *b.BlobTags.BlobTagSet[0].Key != "only" {
		t.Fatalf("listed tags %+v", b.BlobTags)
	}
	many := map[string]string{}
	for i := range 11 {
		many[fmt.Sprint("k", i)] = "v"
	}
	_, err = bb.SetTags(ctx, many, nil)
	wantCode(t, err, http.StatusBadRequest, "InvalidTag")
}

func TestLeaseExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "expiry")
	bb := cc.NewBlockBlobClient("b")
	if _, err := bb.Upload(ctx, nopCloser("v1"), nil); err != nil {
		t.Fatal(err)
	}
	lc, _ := lease.NewBlobClient(bb, nil)
	if _, err := lc.AcquireLease(ctx, 15, nil); err != nil {
		t.Fatal(err)
	}
	_, err := bb.Upload(ctx, nopCloser("v2"), nil)
	wantCode(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
	e.svc.skew.Store(int64(16 * time.Second))
	props, err := bb.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.LeaseState != lease.StateTypeExpired || *props.LeaseStatus != lease.StatusTypeUnlocked {
		t.Fatalf("state %s status %s", *props.LeaseState, *props.LeaseStatus)
	}
	// An expired lease can be renewed by its holder while the blob is
	// unmodified ...
	if _, err := lc.RenewLease(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = bb.Upload(ctx, nopCloser("v3"), nil)
	wantCode(t, err, http.StatusPreconditionFailed, "LeaseIdMissing")
	// A break period ends on the clock too.
	if _, err := lc.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: to.Ptr[int32](5)}); err != nil {
		t.Fatal(err)
	}
	e.svc.skew.Add(int64(6 * time.Second))
	props, _ = bb.GetProperties(ctx, nil)
	if *props.LeaseState != lease.StateTypeBroken {
		t.Fatalf("state after the break period %s", *props.LeaseState)
	}
	// ... but a write ends an expired lease for good.
	if _, err := lc.AcquireLease(ctx, 15, nil); err != nil {
		t.Fatal(err)
	}
	e.svc.skew.Add(int64(16 * time.Second))
	if _, err := bb.Upload(ctx, nopCloser("v4"), nil); err != nil {
		t.Fatalf("write after the lease expired: %v", err)
	}
	_, err = lc.RenewLease(ctx, nil)
	wantCode(t, err, http.StatusConflict, "LeaseNotPresentWithLeaseOperation")
}

func TestStageBlockFromURL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "fromurl")
	data := randBytes(200_000, 11)
	if _, err := e.client.UploadBuffer(ctx, "fromurl", "src", data, nil); err != nil {
		t.Fatal(err)
	}
	src := cc.NewBlobClient("src").URL()
	dst := cc.NewBlockBlobClient("dst")
	// Two blocks from ranges of the source, in reverse order.
	if _, err := dst.StageBlockFromURL(ctx, blockID(1), src, &blockblob.StageBlockFromURLOptions{Range: blob.HTTPRange{Offset: 0, Count: 100}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.StageBlockFromURL(ctx, blockID(2), src, &blockblob.StageBlockFromURLOptions{Range: blob.HTTPRange{Offset: 100, Count: 199_900}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.CommitBlockList(ctx, []string{blockID(2), blockID(1)}, nil); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Clone(data[100:]), data[:100]...)
	if got := download(t, ctx, dst.BlobClient(), nil); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	_, err := dst.StageBlockFromURL(ctx, blockID(3), cc.NewBlobClient("missing").URL(), nil)
	wantCode(t, err, http.StatusNotFound, "CannotVerifyCopySource")
}
