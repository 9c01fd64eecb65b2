package conformance

// Blob service: the environment and the checks shared by the blob tests.
// Tags and Find Blobs by Tags are in blob_tags_test.go, operations on
// blobs of every type in blob_blob_test.go, those of one blob type in
// blob_types_test.go.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/weftcloud/weft/internal/storage"
	blobsvc "github.com/weftcloud/weft/internal/storage/blob"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// blobEnv is a Blob service of its own, served on loopback through the
// storage front end, with an SDK client for the development account.
type blobEnv struct {
	endpoint string
	svc      *service.Client
}

func newBlobEnv(t *testing.T) *blobEnv {
	t.Helper()
	s, err := blobsvc.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	endpoint := storagetest.Serve(t, storage.Blob, s)
	cred, err := service.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	env := &blobEnv{endpoint: endpoint}
	svc, err := service.NewClientWithSharedKeyCredential(endpoint+"/", cred, &service.ClientOptions{ClientOptions: env.clientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	env.svc = svc
	return env
}

// clientOptions are the SDK options of the tests' clients: no retries, and
// credentials over plain HTTP (loopback).
func (e *blobEnv) clientOptions() policy.ClientOptions {
	return policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}, InsecureAllowCredentialWithHTTP: true}
}

// container creates a container and returns its client.
func (e *blobEnv) container(t *testing.T, name string) *container.Client {
	t.Helper()
	cc := e.svc.NewContainerClient(name)
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	return cc
}

// upload writes a block blob with content and tags.
func (e *blobEnv) upload(t *testing.T, cc *container.Client, name, content string, tags map[string]string) *blockblob.Client {
	t.Helper()
	bc := cc.NewBlockBlobClient(name)
	if _, err := bc.Upload(context.Background(), body(content), &blockblob.UploadOptions{Tags: tags}); err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
	return bc
}

// body is a request body for the SDK.
func body(s string) io.ReadSeekCloser { return streaming.NopCloser(strings.NewReader(s)) }

// do sends a signed raw request to the blob service.
func (e *blobEnv) do(t *testing.T, method, path string, hdr map[string]string, body []byte) response {
	t.Helper()
	h := http.Header{}
	h.Set("x-ms-version", "2021-12-02")
	for k, v := range hdr {
		h.Set(k, v)
	}
	return do(t, storage.Blob, e.endpoint, method, path, h, body)
}

// The blobs the x-ms-if-tags checks run against carry teamTags;
// tagsTrue holds for them, tagsFalse does not, tagsMalformed is no
// expression (a value must be quoted).
var (
	teamTags      = map[string]string{"team": "blue", "tier": "2"}
	tagsTrue      = `"team" = 'blue' AND "tier" >= '1'`
	tagsFalse     = `"team" = 'red' OR "tier" > '2'`
	tagsMalformed = `"team" = blue`
)

// ifTags is a ModifiedAccessConditions with only x-ms-if-tags.
func ifTags(cond string) *blob.ModifiedAccessConditions {
	return &blob.ModifiedAccessConditions{IfTags: to.Ptr(cond)}
}

// ifTagsAccess is an AccessConditions with only x-ms-if-tags.
func ifTagsAccess(cond string) *blob.AccessConditions {
	return &blob.AccessConditions{ModifiedAccessConditions: ifTags(cond)}
}

// checkIfTags runs the subtests of an operation's x-ms-if-tags condition
// against a blob with teamTags: false is 412 ConditionNotMet, malformed 400
// InvalidHeaderValue, both leaving the blob as it was; then true succeeds.
// op runs the operation with the condition.
func checkIfTags(t *testing.T, op func(cond string) error) {
	t.Helper()
	t.Run("x-ms-if-tags false", func(t *testing.T) {
		wantErr(t, op(tagsFalse), http.StatusPreconditionFailed, "ConditionNotMet")
	})
	t.Run("x-ms-if-tags malformed", func(t *testing.T) {
		wantErr(t, op(tagsMalformed), http.StatusBadRequest, "InvalidHeaderValue")
	})
	t.Run("x-ms-if-tags true", func(t *testing.T) {
		if err := op(tagsTrue); err != nil {
			t.Fatal(err)
		}
	})
}

// blobSAS is the address of a blob under a service SAS signed with the
// development account's key, granting perms ("r", "rw", ...).
func (e *blobEnv) blobSAS(t *testing.T, containerName, blobName, perms string) string {
	t.Helper()
	cred, err := service.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(),
		Permissions: perms, ContainerName: containerName, BlobName: blobName,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return e.endpoint + "/" + containerName + "/" + blobName + "?" + qp.Encode()
}
