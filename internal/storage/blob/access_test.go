package blob

import (
	"context"
	"errors"
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
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// sharedKey is the credential of the development account the test front
// end serves, taken from its connection string.
func sharedKey(t *testing.T) *azblob.SharedKeyCredential {
	t.Helper()
	var name, key string
	for part := range strings.SplitSeq(storagetest.ConnectionString("http://x", "", ""), ";") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "AccountName":
			name = v
		case "AccountKey":
			key = v
		}
	}
	cred, err := azblob.NewSharedKeyCredential(name, key)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// failed reports whether err is an Azure error with a 4xx status.
func failed(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500
}

func TestPublicAccess(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		access *container.PublicAccessType
	}{
		{"private", nil},
		{"blobs", to.Ptr(container.PublicAccessTypeBlob)},
		{"listable", to.Ptr(container.PublicAccessTypeContainer)},
	} {
		if _, err := e.client.CreateContainer(ctx, c.name, &container.CreateOptions{Access: c.access}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.UploadBuffer(ctx, c.name, "hello.txt", []byte("hi"), nil); err != nil {
			t.Fatal(err)
		}
	}
	anon, err := azblob.NewClientWithNoCredential(e.endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		container      string
		read, list     bool
		writeForbidden bool
	}{
		{"private", false, false, true},
		{"blobs", true, false, true},
		{"listable", true, true, true},
	} {
		t.Run(tc.container, func(t *testing.T) {
			_, err := anon.DownloadStream(ctx, tc.container, "hello.txt", nil)
			if (err == nil) != tc.read {
				t.Errorf("anonymous read: %v, want allowed=%v", err, tc.read)
			}
			_, err = anon.NewListBlobsFlatPager(tc.container, nil).NextPage(ctx)
			if (err == nil) != tc.list {
				t.Errorf("anonymous list: %v, want allowed=%v", err, tc.list)
			}
			_, err = anon.UploadBuffer(ctx, tc.container, "evil.txt", []byte("x"), nil)
			if !failed(err) {
				t.Errorf("anonymous write: %v, want refused", err)
			}
			_, err = anon.DeleteBlob(ctx, tc.container, "hello.txt", nil)
			if !failed(err) {
				t.Errorf("anonymous delete: %v, want refused", err)
			}
		})
	}
	acl, err := e.client.ServiceClient().NewContainerClient("listable").GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acl.BlobPublicAccess == nil || *acl.BlobPublicAccess != container.PublicAccessTypeContainer {
		t.Fatalf("access policy %+v", acl)
	}
	// Setting an ACL stores the signed identifiers and the access level.
	cc := e.client.ServiceClient().NewContainerClient("private")
	_, err = cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{
		Access: to.Ptr(container.PublicAccessTypeBlob),
		ContainerACL: []*container.SignedIdentifier{{ID: to.Ptr("policy1"), AccessPolicy: &container.AccessPolicy{
			Permission: to.Ptr("rl"), Start: to.Ptr(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), Expiry: to.Ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	acl, err = cc.GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(acl.SignedIdentifiers) != 1 || *acl.SignedIdentifiers[0].ID != "policy1" || *acl.SignedIdentifiers[0].AccessPolicy.Permission != "rl" {
		t.Fatalf("signed identifiers %+v", acl.SignedIdentifiers)
	}
	if _, err := anon.DownloadStream(ctx, "private", "hello.txt", nil); err != nil {
		t.Fatalf("read after making the container public: %v", err)
	}
}

func TestSAS(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "shared")
	if _, err := e.client.UploadBuffer(ctx, "shared", "doc.txt", []byte("secret"), nil); err != nil {
		t.Fatal(err)
	}
	cred := sharedKey(t)
	expiry := time.Now().UTC().Add(time.Hour)
	blobSAS := func(perms sas.BlobPermissions, disposition string) string {
		t.Helper()
		q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: expiry, Permissions: perms.String(),
			ContainerName: "shared", BlobName: "doc.txt", ContentDisposition: disposition}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return cc.NewBlobClient("doc.txt").URL() + "?" + q.Encode()
	}
	// A read-only service SAS reads, with the response override applied ...
	rc, err := blob.NewClientWithNoCredential(blobSAS(sas.BlobPermissions{Read: true}, "attachment; filename=doc.txt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rc.DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentDisposition == nil || *resp.ContentDisposition != "attachment; filename=doc.txt" {
		t.Errorf("content disposition %v", resp.ContentDisposition)
	}
	// ... but cannot write.
	bc, _ := blockblob.NewClientWithNoCredential(blobSAS(sas.BlobPermissions{Read: true}, ""), nil)
	_, err = bc.Upload(ctx, nopCloser("overwrite"), nil)
	wantCode(t, err, http.StatusForbidden, "")
	bc, _ = blockblob.NewClientWithNoCredential(blobSAS(sas.BlobPermissions{Read: true, Write: true}, ""), nil)
	if _, err := bc.Upload(ctx, nopCloser("overwrite"), nil); err != nil {
		t.Fatalf("write with a write SAS: %v", err)
	}

	accountSAS := func(perms sas.AccountPermissions, rt sas.AccountResourceTypes) *azblob.Client {
		t.Helper()
		q, err := sas.AccountSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: expiry, Permissions: perms.String(),
			ResourceTypes: rt.String()}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		c, err := azblob.NewClientWithNoCredential(e.endpoint+"?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ro := accountSAS(sas.AccountPermissions{Read: true, List: true}, sas.AccountResourceTypes{Service: true, Container: true, Object: true})
	if _, err := ro.ServiceClient().NewListContainersPager(nil).NextPage(ctx); err != nil {
		t.Fatalf("list with an account SAS: %v", err)
	}
	if _, err := ro.DownloadStream(ctx, "shared", "doc.txt", nil); err != nil {
		t.Fatalf("read with an account SAS: %v", err)
	}
	_, err = ro.UploadBuffer(ctx, "shared", "new.txt", []byte("x"), nil)
	wantCode(t, err, http.StatusForbidden, "")
	_, err = ro.DeleteBlob(ctx, "shared", "doc.txt", nil)
	wantCode(t, err, http.StatusForbidden, "")
	rw := accountSAS(sas.AccountPermissions{Read: true, Write: true, Create: true}, sas.AccountResourceTypes{Object: true})
	if _, err := rw.UploadBuffer(ctx, "shared", "new.txt", []byte("x"), nil); err != nil {
		t.Fatalf("write with an account SAS: %v", err)
	}
	_, err = rw.ServiceClient().GetProperties(ctx, nil)
	wantCode(t, err, http.StatusForbidden, "")
}

func TestCORSPreflight(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.client.ServiceClient().SetProperties(ctx, &service.SetPropertiesOptions{CORS: []*service.CORSRule{{
		AllowedOrigins: to.Ptr("https://app.example"), AllowedMethods: to.Ptr("GET,PUT"), AllowedHeaders: to.Ptr("x-ms-*"),
		ExposedHeaders: to.Ptr("x-ms-request-id"), MaxAgeInSeconds: to.Ptr[int32](300)}}})
	if err != nil {
		t.Fatal(err)
	}
	preflight := func(origin, method string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, e.endpoint+"/any/blob.txt", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "x-ms-blob-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := preflight("https://app.example", "PUT")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("allowed preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := preflight("https://evil.example", "PUT"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused preflight: %d", resp.StatusCode)
	}
	if resp := preflight("https://app.example", "DELETE"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused method: %d", resp.StatusCode)
	}
}

func TestStoredAccessPolicy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "policies")
	_, err := cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: []*container.SignedIdentifier{{
		ID: to.Ptr("readers"), AccessPolicy: &container.AccessPolicy{Permission: to.Ptr("rl"),
			Expiry: to.Ptr(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))}}}})
	if err != nil {
		t.Fatal(err)
	}
	start, expiry, perms, ok := e.svc.StoredAccessPolicy("devstoreaccount1", "policies", "readers")
	if !ok || perms != "rl" || start != "" || !strings.HasPrefix(expiry, "2030-01-02T03:04:05") {
		t.Fatalf("policy = %q %q %q %v", start, expiry, perms, ok)
	}
	if _, _, _, ok := e.svc.StoredAccessPolicy("devstoreaccount1", "policies", "writers"); ok {
		t.Fatal("found a policy never set")
	}
}
