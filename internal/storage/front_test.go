package storage_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/sas"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// recorder is a storage.Handler that answers 200 and keeps what the front
// end worked out, so tests can see how a request was authenticated.
type recorder struct {
	mu    sync.Mutex
	last  *storage.Request
	rules []storage.CORSRule
}

var (
	_ storage.Handler   = (*recorder)(nil)
	_ storage.CORSRules = (*recorder)(nil)
)

func (h *recorder) ServeStorage(w http.ResponseWriter, r *http.Request, req *storage.Request) {
	h.mu.Lock()
	h.last = req
	h.mu.Unlock()
	for k, v := range req.ResponseOverrides() {
		w.Header()[k] = v
	}
	w.WriteHeader(http.StatusOK)
}

func (h *recorder) CORSRules(string) []storage.CORSRule { return h.rules }

func (h *recorder) request() *storage.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

func code(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// get sends a plain GET and returns the status and x-ms-error-code.
func get(t *testing.T, u string, hdr http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("x-ms-error-code"), resp.Header
}

func TestSharedKeyFromSDK(t *testing.T) {
	h := &recorder{}
	second := make([]byte, 64)
	_, _ = rand.Read(second)
	dev, _ := base64.StdEncoding.DecodeString(storage.DevKey)
	ep := storagetest.ServeAccounts(t, storage.Blob, h, storage.StaticAccounts{storage.DevAccount: {dev, second}})
	ctx := context.Background()
	for _, key := range []string{storage.DevKey, base64.StdEncoding.EncodeToString(second)} {
		cred, err := azblob.NewSharedKeyCredential(storage.DevAccount, key)
		if err != nil {
			t.Fatal(err)
		}
		client, err := azblob.NewClientWithSharedKeyCredential(ep, cred, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = client.ServiceClient().NewContainerClient("photos").NewBlobClient("dir/a b+c.txt").GetProperties(ctx, nil)
		req := h.request()
		if req == nil || req.Auth.Kind != storage.SharedKey || req.Path != "photos/dir/a b+c.txt" || req.Account != storage.DevAccount {
			t.Fatalf("request = %+v, want Shared Key on photos/dir/a b+c.txt", req)
		}
	}
	wrong := base64.StdEncoding.EncodeToString(make([]byte, 64))
	cred, _ := azblob.NewSharedKeyCredential(storage.DevAccount, wrong)
	client, _ := azblob.NewClientWithSharedKeyCredential(ep, cred, nil)
	_, err := client.ServiceClient().NewContainerClient("photos").GetProperties(ctx, nil)
	if code(err) != "AuthenticationFailed" {
		t.Fatalf("wrong key: %v, want AuthenticationFailed", err)
	}
}

func TestTableSharedKeyLiteAndSAS(t *testing.T) {
	h := &recorder{}
	ep := storagetest.Serve(t, storage.Table, h)
	cred, err := aztables.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := aztables.NewServiceClientWithSharedKey(ep, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = svc.NewClient("orders").GetEntity(context.Background(), "a", "b", nil)
	if req := h.request(); req == nil || req.Auth.Kind != storage.SharedKeyLite {
		t.Fatalf("request = %+v, want Shared Key Lite", req)
	}
	q, err := aztables.SASSignatureValues{
		Protocol: aztables.SASProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour).UTC(), Permissions: "r",
		TableName: "Orders", StartPartitionKey: "a", EndPartitionKey: "m",
	}.Sign(cred)
	if err != nil {
		t.Fatal(err)
	}
	// aztables 1.4.1 signs the key range but leaves it out of the query.
	q += "&spk=a&epk=m"
	if st, c, _ := get(t, ep+"/Orders()?"+q, nil); st != http.StatusOK {
		t.Fatalf("table SAS: %d %s", st, c)
	}
	req := h.request()
	if req.Auth.Kind != storage.ServiceSAS || req.Auth.SAS.TableName != "orders" || req.Auth.SAS.EndPK != "m" {
		t.Fatalf("table SAS request = %+v", req.Auth.SAS)
	}
	tampered := strings.Replace(q, "epk=m", "epk=z", 1)
	if st, c, _ := get(t, ep+"/Orders()?"+tampered, nil); st != http.StatusForbidden || c != "AuthenticationFailed" {
		t.Fatalf("tampered table SAS: %d %s", st, c)
	}
}

func TestBlobSASFromSDK(t *testing.T) {
	h := &recorder{}
	ep := storagetest.Serve(t, storage.Blob, h)
	cred, err := azblob.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	sign := func(v sas.BlobSignatureValues) string {
		t.Helper()
		p, err := v.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return p.Encode()
	}
	blobSAS := sign(sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour), ContainerName: "photos", BlobName: "cat one.jpg",
		Permissions: (&sas.BlobPermissions{Read: true}).String(), ContentType: "image/jpeg", ContentDisposition: "attachment",
	})
	acctSAS, err := sas.AccountSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour), EncryptionScope: "",
		Permissions:   (&sas.AccountPermissions{Read: true, List: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	qcred, _ := azqueue.NewSharedKeyCredential(storage.DevAccount, storage.DevKey)
	queueOnly, _ := qsas.AccountSignatureValues{
		Protocol: qsas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour), Permissions: "r", ResourceTypes: "sco",
	}.SignWithSharedKey(qcred)
	for _, tc := range []struct {
		name, path, query string
		status            int
		code              string
		kind              storage.AuthKind
	}{
		{"blob sas", "/photos/cat%20one.jpg", blobSAS, 200, "", storage.ServiceSAS},
		{"blob sas on another blob", "/photos/dog.jpg", blobSAS, 403, "AuthenticationFailed", 0},
		{"blob sas tampered permission", "/photos/cat%20one.jpg", strings.Replace(blobSAS, "sp=r", "sp=rw", 1), 403, "AuthenticationFailed", 0},
		{"blob sas tampered override", "/photos/cat%20one.jpg", strings.Replace(blobSAS, "rsct=image", "rsct=text", 1), 403, "AuthenticationFailed", 0},
		{"container sas", "/photos/any/blob", sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour), ContainerName: "photos", Permissions: "rl"}), 200, "", storage.ServiceSAS},
		{"expired", "/photos/x", sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(-time.Minute), ContainerName: "photos", Permissions: "r"}), 403, "AuthenticationFailed", 0},
		{"not yet valid", "/photos/x", sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, StartTime: now.Add(time.Hour), ExpiryTime: now.Add(2 * time.Hour), ContainerName: "photos", Permissions: "r"}), 403, "AuthenticationFailed", 0},
		{"https only", "/photos/x", sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPS, ExpiryTime: now.Add(time.Hour), ContainerName: "photos", Permissions: "r"}), 403, "AuthorizationProtocolMismatch", 0},
		{"other source ip", "/photos/x", sign(sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: now.Add(time.Hour), ContainerName: "photos", Permissions: "r", IPRange: sas.IPRange{Start: []byte{10, 0, 0, 1}, End: []byte{10, 0, 0, 9}}}), 403, "AuthorizationSourceIPMismatch", 0},
		{"stored access policy", "/photos/x", sign(sas.BlobSignatureValues{ContainerName: "photos", Identifier: "policy1"}), 403, "AuthenticationFailed", 0},
		{"account sas", "/photos/x", acctSAS.Encode(), 200, "", storage.AccountSAS},
		{"account sas tampered", "/photos/x", strings.Replace(acctSAS.Encode(), "srt=co", "srt=sco", 1), 403, "AuthenticationFailed", 0},
		{"account sas for queue", "/photos/x", queueOnly.Encode(), 403, "AuthorizationServiceMismatch", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, c, hdr := get(t, ep+tc.path+"?"+tc.query, nil)
			if st != tc.status || c != tc.code {
				t.Fatalf("got %d %s, want %d %s", st, c, tc.status, tc.code)
			}
			if tc.status == 200 && h.request().Auth.Kind != tc.kind {
				t.Fatalf("auth kind %v, want %v", h.request().Auth.Kind, tc.kind)
			}
			if tc.name == "blob sas" && (hdr.Get("Content-Type") != "image/jpeg" || hdr.Get("Content-Disposition") != "attachment") {
				t.Fatalf("overrides not exposed: %v", hdr)
			}
		})
	}
}

func TestFrontHeadersAndAddressing(t *testing.T) {
	h := &recorder{rules: []storage.CORSRule{{AllowedOrigins: []string{"https://app.example"}, AllowedMethods: []string{"GET", "PUT"},
		AllowedHeaders: []string{"x-ms-meta-*", "content-type"}, ExposedHeaders: []string{"x-ms-request-id"}, MaxAgeInSeconds: 60}}}
	ep := storagetest.Serve(t, storage.Blob, h)
	u, _ := url.Parse(ep)

	// Host-style: the account comes from the host name.
	req, _ := http.NewRequest(http.MethodGet, "http://"+u.Host+"/photos/a.txt", nil)
	req.Host = "devstoreaccount1.blob.weft.local:" + u.Port()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := h.request(); r.Account != storage.DevAccount || r.Path != "photos/a.txt" || r.Auth.Kind != storage.Anonymous {
		t.Fatalf("host-style request = %+v", r)
	}
	if resp.Header.Get("x-ms-request-id") == "" || resp.Header.Get("Date") == "" || resp.Header.Get("x-ms-version") == "" {
		t.Fatalf("missing headers: %v", resp.Header)
	}

	for _, tc := range []struct {
		version string
		status  int
	}{{"2026-12-06", 200}, {"2099-01-01", 200}, {"2009-09-19", 200}, {"latest", 400}, {"2026-13-01", 400}} {
		st, _, hdr := get(t, ep+"/photos", http.Header{"X-Ms-Version": {tc.version}})
		if st != tc.status {
			t.Errorf("x-ms-version %s: %d, want %d", tc.version, st, tc.status)
		}
		if hdr.Get("x-ms-version") != tc.version {
			t.Errorf("x-ms-version %s echoed as %q", tc.version, hdr.Get("x-ms-version"))
		}
	}

	preflight := func(origin, method, headers string) (int, http.Header) {
		req, _ := http.NewRequest(http.MethodOptions, ep+"/photos/a.txt", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", headers)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	if st, hdr := preflight("https://app.example", "PUT", "x-ms-meta-owner,content-type"); st != 200 ||
		hdr.Get("Access-Control-Allow-Origin") != "https://app.example" || hdr.Get("Access-Control-Max-Age") != "60" {
		t.Fatalf("preflight: %d %v", st, hdr)
	}
	for _, bad := range [][3]string{{"https://evil.example", "PUT", ""}, {"https://app.example", "DELETE", ""}, {"https://app.example", "PUT", "x-custom"}} {
		if st, _ := preflight(bad[0], bad[1], bad[2]); st != http.StatusForbidden {
			t.Errorf("preflight %v: %d, want 403", bad, st)
		}
	}
	if _, _, hdr := get(t, ep+"/photos/a.txt", http.Header{"Origin": {"https://app.example"}}); hdr.Get("Access-Control-Expose-Headers") != "x-ms-request-id" {
		t.Fatalf("CORS answer headers: %v", hdr)
	}
}
