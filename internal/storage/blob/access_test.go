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
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
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

// TestStoredAccessPolicy signs service SAS tokens that name a container's
// stored access policy (si) and checks that the policy fills in what the
// SAS leaves out, that a field given twice or an unknown policy is refused,
// and that removing the policy revokes the SAS at once.
func TestStoredAccessPolicy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "policies")
	if _, err := e.client.UploadBuffer(ctx, "policies", "doc.txt", []byte("secret"), nil); err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	policies := []*container.SignedIdentifier{
		{ID: to.Ptr("readers"), AccessPolicy: &container.AccessPolicy{Permission: to.Ptr("rl"), Expiry: &expiry}},
		{ID: to.Ptr("timeonly"), AccessPolicy: &container.AccessPolicy{Expiry: &expiry}},
		{ID: to.Ptr("expired"), AccessPolicy: &container.AccessPolicy{Permission: to.Ptr("r"), Expiry: to.Ptr(expiry.Add(-2 * time.Hour))}},
	}
	if _, err := cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: policies}); err != nil {
		t.Fatal(err)
	}
	got, err := cc.GetAccessPolicy(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.SignedIdentifiers) != 3 || *got.SignedIdentifiers[0].ID != "readers" || *got.SignedIdentifiers[2].ID != "expired" ||
		!got.SignedIdentifiers[0].AccessPolicy.Expiry.Equal(expiry) || *got.SignedIdentifiers[0].AccessPolicy.Permission != "rl" ||
		got.SignedIdentifiers[1].AccessPolicy.Permission != nil {
		t.Fatalf("policies = %+v", got.SignedIdentifiers)
	}

	cred := sharedKey(t)
	read := func(v sas.BlobSignatureValues) error {
		t.Helper()
		v.Protocol, v.ContainerName, v.BlobName = sas.ProtocolHTTPSandHTTP, "policies", "doc.txt"
		q, err := v.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		bc, err := blob.NewClientWithNoCredential(cc.NewBlobClient("doc.txt").URL()+"?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := bc.DownloadStream(ctx, nil)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := read(sas.BlobSignatureValues{Identifier: "readers"}); err != nil {
		t.Fatalf("read with the policy's permissions and expiry: %v", err)
	}
	if err := read(sas.BlobSignatureValues{Identifier: "timeonly", Permissions: "r"}); err != nil {
		t.Fatalf("read with the SAS's permission and the policy's expiry: %v", err)
	}
	// The policy grants only what it names.
	wc, _ := blockblob.NewClientWithNoCredential(func() string {
		q, _ := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ContainerName: "policies", BlobName: "doc.txt", Identifier: "readers"}.SignWithSharedKey(cred)
		return cc.NewBlobClient("doc.txt").URL() + "?" + q.Encode()
	}(), nil)
	_, err = wc.Upload(ctx, nopCloser("overwrite"), nil)
	wantCode(t, err, http.StatusForbidden, "AuthorizationPermissionMismatch")

	for _, tc := range []struct {
		name string
		v    sas.BlobSignatureValues
	}{
		{"permission in both", sas.BlobSignatureValues{Identifier: "readers", Permissions: "r"}},
		{"expiry in both", sas.BlobSignatureValues{Identifier: "readers", ExpiryTime: expiry}},
		{"no permission anywhere", sas.BlobSignatureValues{Identifier: "timeonly"}},
		{"policy expired", sas.BlobSignatureValues{Identifier: "expired"}},
		{"unknown policy", sas.BlobSignatureValues{Identifier: "writers", Permissions: "r", ExpiryTime: expiry}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, read(tc.v), http.StatusForbidden, "AuthenticationFailed")
		})
	}

	// A SAS may not read or change the policies it lives under.
	q, _ := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ContainerName: "policies", Identifier: "readers"}.SignWithSharedKey(cred)
	sc, _ := container.NewClientWithNoCredential(cc.URL()+"?"+q.Encode(), nil)
	_, err = sc.GetAccessPolicy(ctx, nil)
	wantCode(t, err, http.StatusForbidden, "AuthorizationFailure")

	// Removing the policy revokes every SAS issued under it, at once.
	if _, err := cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: policies[1:]}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, read(sas.BlobSignatureValues{Identifier: "readers"}), http.StatusForbidden, "AuthenticationFailed")
	if err := read(sas.BlobSignatureValues{Identifier: "timeonly", Permissions: "r"}); err != nil {
		t.Fatalf("a remaining policy stopped working: %v", err)
	}
}

// TestSetContainerACLConditions checks that Set Container ACL honours the
// lease and the date conditions, and changes nothing when it refuses.
func TestSetContainerACLConditions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cc := e.container(t, "leased")
	acl := []*container.SignedIdentifier{{ID: to.Ptr("p"), AccessPolicy: &container.AccessPolicy{Permission: to.Ptr("r")}}}
	props, err := cc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: acl,
		AccessConditions: &container.AccessConditions{ModifiedAccessConditions: &container.ModifiedAccessConditions{IfModifiedSince: props.LastModified}}})
	wantCode(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	lc, err := lease.NewContainerClient(cc, &lease.ContainerClientOptions{LeaseID: to.Ptr("7c5a1d33-1f8c-4a09-9a4f-3f1c5b8e2d10")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AcquireLease(ctx, 60, nil); err != nil {
		t.Fatal(err)
	}
	_, err = cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: acl,
		AccessConditions: &container.AccessConditions{LeaseAccessConditions: &container.LeaseAccessConditions{LeaseID: to.Ptr("00000000-1f8c-4a09-9a4f-3f1c5b8e2d10")}}})
	wantCode(t, err, http.StatusPreconditionFailed, "")
	got, err := cc.GetAccessPolicy(ctx, nil)
	if err != nil || len(got.SignedIdentifiers) != 0 {
		t.Fatalf("after refused sets: %+v, %v", got.SignedIdentifiers, err)
	}
	_, err = cc.SetAccessPolicy(ctx, &container.SetAccessPolicyOptions{ContainerACL: acl, Access: to.Ptr(container.PublicAccessTypeBlob),
		AccessConditions: &container.AccessConditions{LeaseAccessConditions: &container.LeaseAccessConditions{LeaseID: lc.LeaseID()},
			ModifiedAccessConditions: &container.ModifiedAccessConditions{IfUnmodifiedSince: to.Ptr(time.Now().Add(time.Hour))}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err = cc.GetAccessPolicy(ctx, nil)
	if err != nil || len(got.SignedIdentifiers) != 1 || got.BlobPublicAccess == nil || *got.BlobPublicAccess != container.PublicAccessTypeBlob {
		t.Fatalf("after set under the lease: %+v, %v", got, err)
	}
}

// TestSetContainerACLBadInput sends what the SDK would not: each is a 400
// with Azure's code and leaves the policies as they were.
func TestSetContainerACLBadInput(t *testing.T) {
	e := newEnv(t)
	cc := e.container(t, "badacl")
	good := `<SignedIdentifiers><SignedIdentifier><Id>keep</Id><AccessPolicy><Permission>r</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>`
	c := newRawClient(t, e)
	if resp, body := c.do(http.MethodPut, "badacl", "restype=container&comp=acl", nil, strings.NewReader(good), int64(len(good))); resp.StatusCode != http.StatusOK {
		t.Fatalf("good ACL: %d %s", resp.StatusCode, body)
	}
	item := func(id, policy string) string {
		return "<SignedIdentifier><Id>" + id + "</Id><AccessPolicy>" + policy + "</AccessPolicy></SignedIdentifier>"
	}
	for _, tc := range []struct{ name, body, code string }{
		{"six identifiers", "<SignedIdentifiers>" + strings.Repeat(item("a", ""), 3) + strings.Repeat(item("b", ""), 3) + "</SignedIdentifiers>", "InvalidXmlDocument"},
		{"long id", "<SignedIdentifiers>" + item(strings.Repeat("x", 65), "") + "</SignedIdentifiers>", "InvalidXmlDocument"},
		{"malformed", "<SignedIdentifiers><SignedIdentifier>", "InvalidXmlDocument"},
		{"bad date", "<SignedIdentifiers>" + item("a", "<Expiry>tomorrow</Expiry>") + "</SignedIdentifiers>", "InvalidXmlNodeValue"},
		{"bad permission", "<SignedIdentifiers>" + item("a", "<Permission>rq</Permission>") + "</SignedIdentifiers>", "InvalidXmlNodeValue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := c.do(http.MethodPut, "badacl", "restype=container&comp=acl", nil, strings.NewReader(tc.body), int64(len(tc.body)))
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("x-ms-error-code") != tc.code {
				t.Fatalf("%d %s, want 400 %s", resp.StatusCode, body, tc.code)
			}
		})
	}
	got, err := cc.GetAccessPolicy(context.Background(), nil)
	if err != nil || len(got.SignedIdentifiers) != 1 || *got.SignedIdentifiers[0].ID != "keep" {
		t.Fatalf("policies after bad input: %+v, %v", got.SignedIdentifiers, err)
	}
}
