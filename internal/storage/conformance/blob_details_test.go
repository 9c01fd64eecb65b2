package conformance

// Blob service: operations on the account, containers and blocks whose
// details the other blob files do not cover: service properties and
// stats, listings, Put Block.

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/storage"
)

func TestBlob_SetBlobServiceProperties(t *testing.T) {
	cover(t, storage.Blob, "Set Blob Service Properties")
	env := newBlobEnv(t)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		// Logging, metrics and the static website come back as they were set.
		retention := &service.RetentionPolicy{Enabled: to.Ptr(true), Days: to.Ptr[int32](5)}
		set := service.SetPropertiesOptions{
			Logging:       &service.Logging{Version: to.Ptr("1.0"), Read: to.Ptr(true), Write: to.Ptr(true), Delete: to.Ptr(false), RetentionPolicy: retention},
			HourMetrics:   &service.Metrics{Version: to.Ptr("1.0"), Enabled: to.Ptr(true), IncludeAPIs: to.Ptr(true), RetentionPolicy: retention},
			MinuteMetrics: &service.Metrics{Version: to.Ptr("1.0"), Enabled: to.Ptr(true), IncludeAPIs: to.Ptr(false), RetentionPolicy: retention},
			StaticWebsite: &service.StaticWebsite{Enabled: to.Ptr(true), IndexDocument: to.Ptr("index.html"),
				ErrorDocument404Path: to.Ptr("404.html"), DefaultIndexDocumentPath: to.Ptr("docs/index.html")},
		}
		if _, err := env.svc.SetProperties(ctx, &set); err != nil {
			t.Fatal(err)
		}
		got, err := env.svc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(set.Logging, got.Logging); diff != "" {
			t.Errorf("logging (-set +got):\n%s", diff)
		}
		if diff := cmp.Diff(set.HourMetrics, got.HourMetrics); diff != "" {
			t.Errorf("hour metrics (-set +got):\n%s", diff)
		}
		if diff := cmp.Diff(set.MinuteMetrics, got.MinuteMetrics); diff != "" {
			t.Errorf("minute metrics (-set +got):\n%s", diff)
		}
		if diff := cmp.Diff(set.StaticWebsite, got.StaticWebsite); diff != "" {
			t.Errorf("static website (-set +got):\n%s", diff)
		}
		// Elements a later request leaves out keep their settings.
		if _, err := env.svc.SetProperties(ctx, &service.SetPropertiesOptions{CORS: []*service.CORSRule{}}); err != nil {
			t.Fatal(err)
		}
		got, err = env.svc.GetProperties(ctx, nil)
		if err != nil || got.StaticWebsite == nil || !*got.StaticWebsite.Enabled {
			t.Errorf("static website after a CORS-only set: %+v, %v", got.StaticWebsite, err)
		}
	})
	t.Run("answer", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/?restype=service&comp=properties", map[string]string{"Content-Type": "application/xml"},
			[]byte(`<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><Cors/></StorageServiceProperties>`))
		r.want(t, http.StatusAccepted, "")
	})
	t.Run("InvalidXmlDocument", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/?restype=service&comp=properties", map[string]string{"Content-Type": "application/xml"},
			[]byte(`<StorageServiceProperties><Logging>`))
		r.want(t, http.StatusBadRequest, "InvalidXmlDocument")
	})
}

func TestBlob_GetBlobServiceProperties(t *testing.T) {
	cover(t, storage.Blob, "Get Blob Service Properties")
	env := newBlobEnv(t)
	got, err := env.svc.GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// An account that never set them answers the defaults: everything off.
	if got.Logging == nil || *got.Logging.Read || got.HourMetrics == nil || *got.HourMetrics.Enabled ||
		got.StaticWebsite == nil || *got.StaticWebsite.Enabled {
		t.Errorf("default properties: %+v", got)
	}
}

func TestBlob_GetBlobServiceStats(t *testing.T) {
	cover(t, storage.Blob, "Get Blob Service Stats")
	env := newBlobEnv(t)
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		// Read-access geo-redundant clients ask the secondary location,
		// ACCOUNT-secondary, signing with the account's key. Weft has one
		// location, always live, and answers there and on the primary.
		cred, err := service.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
		if err != nil {
			t.Fatal(err)
		}
		secondary := strings.Replace(env.endpoint, "/"+storage.DevAccount, "/"+storage.DevAccount+"-secondary", 1)
		sc, err := service.NewClientWithSharedKeyCredential(secondary+"/", cred, &service.ClientOptions{ClientOptions: policy.ClientOptions{
			Retry: policy.RetryOptions{MaxRetries: -1}, InsecureAllowCredentialWithHTTP: true}})
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*service.Client{"secondary": sc, "primary": env.svc} {
			got, err := c.GetStatistics(ctx, nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got.GeoReplication == nil || *got.GeoReplication.Status != service.BlobGeoReplicationStatusLive {
				t.Errorf("%s: stats %+v", name, got.GeoReplication)
			}
		}
		// The secondary is read-only.
		_, err = sc.CreateContainer(ctx, "nope", nil)
		if err == nil {
			t.Error("a write on the secondary succeeded")
		}
	})
}

func TestBlob_ListBlobs(t *testing.T) {
	cover(t, storage.Blob, "List Blobs")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	env.upload(t, cc, "a", "x", teamTags)
	t.Run("success", func(t *testing.T) {
		// The ETag a listing gives is the one Get Blob Properties gives,
		// quotes and all, so clients can compare them.
		page, err := cc.NewListBlobsFlatPager(nil).NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := cc.NewBlobClient("a").GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Segment.BlobItems) != 1 || *page.Segment.BlobItems[0].Properties.ETag != *p.ETag {
			t.Errorf("listed ETag %v, properties ETag %v", *page.Segment.BlobItems[0].Properties.ETag, *p.ETag)
		}
		cp, err := cc.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		list, err := env.svc.NewListContainersPager(nil).NextPage(ctx)
		if err != nil || len(list.ContainerItems) != 1 || *list.ContainerItems[0].Properties.ETag != *cp.ETag {
			t.Errorf("listed container ETag %v, properties ETag %v, %v", *list.ContainerItems[0].Properties.ETag, *cp.ETag, err)
		}
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		_, err := env.svc.NewContainerClient("absent").NewListBlobsFlatPager(nil).NextPage(ctx)
		wantErr(t, err, http.StatusNotFound, "ContainerNotFound")
	})
}

func TestBlob_PutBlock(t *testing.T) {
	cover(t, storage.Blob, "Put Block")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	bc := cc.NewBlockBlobClient("b")
	ctx := context.Background()
	t.Run("success", func(t *testing.T) {
		sum := md5.Sum([]byte("hello"))
		resp, err := bc.StageBlock(ctx, blockA, body("hello"), &blockblob.StageBlockOptions{TransactionalValidation: blob.TransferValidationTypeMD5(sum[:])})
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.ContentMD5) != string(sum[:]) {
			t.Errorf("Content-MD5 answered %x", resp.ContentMD5)
		}
	})
	t.Run("Md5Mismatch", func(t *testing.T) {
		r := env.do(t, http.MethodPut, "/box/b?comp=block&blockid="+blockA, map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(make([]byte, 16))}, []byte("hello"))
		r.want(t, http.StatusBadRequest, "Md5Mismatch")
	})
	t.Run("InvalidQueryParameterValue", func(t *testing.T) {
		// A block ID must be Base64 of at most 64 bytes.
		env.do(t, http.MethodPut, "/box/b?comp=block&blockid=not*base64", nil, []byte("x")).want(t, http.StatusBadRequest, "InvalidQueryParameterValue")
	})
	t.Run("filter", func(t *testing.T) {
		// Get Block List's blocklisttype picks committed, uncommitted or all.
		committed := base64.StdEncoding.EncodeToString([]byte("block-c"))
		if _, err := bc.StageBlock(ctx, committed, body("c"), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := bc.CommitBlockList(ctx, []string{committed}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := bc.StageBlock(ctx, blockA, body("hello"), nil); err != nil {
			t.Fatal(err)
		}
		for typ, want := range map[blockblob.BlockListType][2]int{
			blockblob.BlockListTypeCommitted: {1, 0}, blockblob.BlockListTypeUncommitted: {0, 1}, blockblob.BlockListTypeAll: {1, 1},
		} {
			got, err := bc.GetBlockList(ctx, typ, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.CommittedBlocks) != want[0] || len(got.UncommittedBlocks) != want[1] {
				t.Errorf("%s: %d committed, %d uncommitted, want %v", typ, len(got.CommittedBlocks), len(got.UncommittedBlocks), want)
			}
		}
		env.do(t, http.MethodGet, "/box/b?comp=blocklist&blocklisttype=some", nil, nil).want(t, http.StatusBadRequest, "InvalidQueryParameterValue")
	})
}
