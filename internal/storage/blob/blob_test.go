package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// env is a Blob service behind the storage front end and an SDK client.
type env struct {
	svc      *Service
	endpoint string
	client   *azblob.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	svc, err := Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	ep := storagetest.Serve(t, storage.Blob, svc)
	client, err := azblob.NewClientFromConnectionString(storagetest.ConnectionString(ep, "", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, endpoint: ep, client: client}
}

func (e *env) container(t testing.TB, name string) *container.Client {
	t.Helper()
	cc := e.client.ServiceClient().NewContainerClient(name)
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	return cc
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// wantCode fails unless err is an Azure error with the code (and status).
func wantCode(t testing.TB, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want %d %s", err, status, code)
	}
	if re.StatusCode != status || (code != "" && re.ErrorCode != code) {
		t.Fatalf("error = %d %s, want %d %s", re.StatusCode, re.ErrorCode, status, code)
	}
}

func download(t testing.TB, ctx context.Context, bc *blob.Client, opts *blob.DownloadStreamOptions) []byte {
	t.Helper()
	resp, err := bc.DownloadStream(ctx, opts)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestContainers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sc := e.client.ServiceClient()
	cc := sc.NewContainerClient("photos")
	if _, err := cc.Create(ctx, &container.CreateOptions{Metadata: map[string]*string{"Owner": to.Ptr("ann")}}); err != nil {
		t.Fatal(err)
	}
	_, err := cc.Create(ctx, nil)
	wantCode(t, err, http.StatusConflict, "ContainerAlreadyExists")

	props, err := cc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := props.Metadata["Owner"]; v == nil || *v != "ann" {
		t.Fatalf("metadata = %v", props.Metadata)
	}
	if props.ETag == nil || props.LastModified == nil || *props.LeaseState != "available" {
		t.Fatalf("properties = %+v", props)
	}
	if _, err := cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: map[string]*string{"k": to.Ptr("v")}}); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"a-one", "a-two", "b-three", "b-four", "c-five"} {
		e.container(t, name)
	}
	var names []string
	pager := sc.NewListContainersPager(&service.ListContainersOptions{MaxResults: to.Ptr[int32](2), Include: service.ListContainersInclude{Metadata: true}})
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, c := range page.ContainerItems {
			names = append(names, *c.Name)
			if *c.Name == "photos" && (c.Metadata["k"] == nil || *c.Metadata["k"] != "v") {
				t.Errorf("listed metadata = %v", c.Metadata)
			}
		}
	}
	want := []string{"a-one", "a-two", "b-four", "b-three", "c-five", "photos"}
	if diff := cmp.Diff(want, names); diff != "" || pages != 3 {
		t.Fatalf("listing (-want +got, %d pages):\n%s", pages, diff)
	}
	pager = sc.NewListContainersPager(&service.ListContainersOptions{Prefix: to.Ptr("b-")})
	page, err := pager.NextPage(ctx)
	if err != nil || len(page.ContainerItems) != 2 {
		t.Fatalf("prefix listing = %v, %v", page.ContainerItems, err)
	}

	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = cc.GetProperties(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "ContainerNotFound")
	_, err = cc.Delete(ctx, nil)
	wantCode(t, err, http.StatusNotFound, "ContainerNotFound")
}

func TestBadNames(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, code string
	}{
		{"ab", "OutOfRangeInput"},
		{strings.Repeat("a", 64), "OutOfRangeInput"},
		{"Upper", "InvalidResourceName"},
		{"double--dash", "InvalidResourceName"},
		{"-lead", "InvalidResourceName"},
		{"trail-", "InvalidResourceName"},
	} {
		_, err := e.client.CreateContainer(ctx, tc.name, nil)
		wantCode(t, err, http.StatusBadRequest, tc.code)
	}
	e.container(t, "names")
	_, err := e.client.UploadBuffer(ctx, "names", strings.Repeat("x", 1025), []byte("x"), nil)
	wantCode(t, err, http.StatusBadRequest, "OutOfRangeInput")
	_, err = e.client.UploadBuffer(ctx, "nope", "b", []byte("x"), nil)
	wantCode(t, err, http.StatusNotFound, "ContainerNotFound")
}

func TestBlockBlobRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.container(t, "data")
	for _, tc := range []struct {
		name      string
		size      int
		blockSize int64
	}{
		{"empty", 0, 0},
		{"small", 1000, 0},
		{"inline-edge", inlineMax, 0},
		{"file", 3<<20 + 17, 0},
		{"staged-small-blocks", 100_000, 4096},
		{"staged-big-blocks", 5<<20 + 3, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randBytes(tc.size, uint64(tc.size))
			opts := &azblob.UploadBufferOptions{BlockSize: tc.blockSize, Concurrency: 4,
				HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain"), BlobCacheControl: to.Ptr("no-cache")},
				Metadata:    map[string]*string{"Kind": to.Ptr(tc.name)}}
			if tc.blockSize > 0 {
				// Force staged blocks even below the single-shot limit.
				bb := e.client.ServiceClient().NewContainerClient("data").NewBlockBlobClient(tc.name)
				_, err := bb.UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{BlockSize: tc.blockSize, Concurrency: 4,
					HTTPHeaders: opts.HTTPHeaders, Metadata: opts.Metadata})
				if err != nil {
					t.Fatal(err)
				}
			} else if _, err := e.client.UploadBuffer(ctx, "data", tc.name, data, opts); err != nil {
				t.Fatal(err)
			}
			bc := e.client.ServiceClient().NewContainerClient("data").NewBlobClient(tc.name)
			got := download(t, ctx, bc, nil)
			if !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes, want %d identical", len(got), len(data))
			}
			props, err := bc.GetProperties(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if *props.ContentLength != int64(tc.size) || *props.ContentType != "text/plain" || *props.CacheControl != "no-cache" ||
				*props.BlobType != blob.BlobTypeBlockBlob || props.Metadata["Kind"] == nil {
				t.Fatalf("properties = len %d type %s cc %s blobtype %s md %v", *props.ContentLength, *props.ContentType, *props.CacheControl, *props.BlobType, props.Metadata)
			}
			buf := make([]byte, tc.size)
			if _, err := bc.DownloadBuffer(ctx, buf, &blob.DownloadBufferOptions{BlockSize: 1 << 20, Concurrency: 3}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, data) {
				t.Fatal("parallel ranged download differs")
			}
		})
	}
}

func TestBlockList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "blocks")
	bb := cc.NewBlockBlobClient("b")
	id := func(i int) string { return blockID(i) }
	for i, s := range []string{"aaa", "bbb", "ccc"} {
		if _, err := bb.StageBlock(ctx, id(i), nopCloser(s), nil); err != nil {
			t.Fatal(err)
		}
	}
	// IDs of another length are refused.
	_, err := bb.StageBlock(ctx, "eHh4eHg=", nopCloser("x"), nil)
	wantCode(t, err, http.StatusBadRequest, "InvalidBlobOrBlock")

	list, err := bb.GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.UncommittedBlocks) != 3 || len(list.CommittedBlocks) != 0 {
		t.Fatalf("block list = %+v", list)
	}
	if _, err := bb.CommitBlockList(ctx, []string{id(2), id(0)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := download(t, ctx, cc.NewBlobClient("b"), nil); string(got) != "cccaaa" {
		t.Fatalf("content = %q", got)
	}
	list, err = bb.GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.UncommittedBlocks) != 0 || len(list.CommittedBlocks) != 2 || *list.CommittedBlocks[0].Name != id(2) {
		t.Fatalf("block list after commit = %+v", list)
	}
	// Latest picks a new uncommitted block over the committed one.
	if _, err := bb.StageBlock(ctx, id(0), nopCloser("AAA"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.CommitBlockList(ctx, []string{id(0), id(2), id(2)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := download(t, ctx, cc.NewBlobClient("b"), nil); string(got) != "AAAcccccc" {
		t.Fatalf("content = %q", got)
	}
	_, err = bb.CommitBlockList(ctx, []string{id(7)}, nil)
	wantCode(t, err, http.StatusBadRequest, "InvalidBlockList")

	// Nothing is left unreferenced once the blob is gone.
	if _, err := cc.NewBlobClient("b").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, e.svc)
}

func TestRanges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.container(t, "ranges")
	data := randBytes(200_000, 3)
	if _, err := e.client.UploadBuffer(ctx, "ranges", "b", data, nil); err != nil {
		t.Fatal(err)
	}
	bc := e.client.ServiceClient().NewContainerClient("ranges").NewBlobClient("b")
	for _, tc := range []struct{ off, n int64 }{{0, 1}, {5, 100}, {199_999, 0}, {100_000, 100_000}, {1, 0}} {
		got := download(t, ctx, bc, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: tc.off, Count: tc.n}})
		end := int64(len(data))
		if tc.n > 0 {
			end = tc.off + tc.n
		}
		if !bytes.Equal(got, data[tc.off:end]) {
			t.Errorf("range %d+%d: got %d bytes", tc.off, tc.n, len(got))
		}
	}
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 10, Count: 20}, RangeGetContentMD5: to.Ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.ContentMD5) != 16 || *resp.ContentRange != "bytes 10-29/200000" {
		t.Fatalf("md5 %x range %v", resp.ContentMD5, resp.ContentRange)
	}
	_, err = bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: 300_000, Count: 1}})
	wantCode(t, err, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
}

func TestUncommittedBlockSweep(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "sweep")
	bb := cc.NewBlockBlobClient("b")
	if _, err := bb.StageBlock(ctx, blockID(1), nopCloser(strings.Repeat("x", inlineMax+1)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := bb.StageBlock(ctx, blockID(2), nopCloser("small"), nil); err != nil {
		t.Fatal(err)
	}
	// Blocks younger than the cutoff stay.
	if err := e.svc.sweepBlocks(time.Now().Add(-blockGCAge)); err != nil {
		t.Fatal(err)
	}
	list, err := bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if err != nil || len(list.UncommittedBlocks) != 2 {
		t.Fatalf("block list %+v, %v", list, err)
	}
	// As if a week had passed.
	if err := e.svc.sweepBlocks(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err = bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	assertNoData(t, e.svc)
}
