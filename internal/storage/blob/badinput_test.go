package blob

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// rawClient sends hand-made requests authorised by an all-powerful account
// SAS, for inputs the SDK would never produce.
type rawClient struct {
	t        *testing.T
	endpoint string
	sas      string
}

func newRawClient(t *testing.T, e *env) *rawClient {
	q, err := sas.AccountSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().UTC().Add(time.Hour),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Create: true, Delete: true, List: true, Add: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String()}.SignWithSharedKey(sharedKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, endpoint: e.endpoint, sas: q.Encode()}
}

func (c *rawClient) do(method, path, query string, header http.Header, body io.Reader, size int64) (*http.Response, string) {
	c.t.Helper()
	u := c.endpoint + "/" + path + "?" + c.sas
	if query != "" {
		u += "&" + query
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("x-ms-version", "2025-01-05")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.container(t, "bad")
	c := newRawClient(t, e)
	ctx := context.Background()
	if _, err := e.client.UploadBuffer(ctx, "bad", "block", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	pb := e.client.ServiceClient().NewContainerClient("bad").NewPageBlobClient("page")
	if _, err := pb.Create(ctx, 16<<20, nil); err != nil {
		t.Fatal(err)
	}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	str := func(s string) (io.Reader, int64) { return strings.NewReader(s), int64(len(s)) }
	for _, tc := range []struct {
		name, method, path, query string
		header                    http.Header
		body                      string
		bodySize                  int64 // a zero-filled body of this size instead
		status                    int
		code                      string
	}{
		{"blocklist-xml", "PUT", "bad/x", "comp=blocklist", nil, "<BlockList><Latest>", 0, 400, "InvalidXmlDocument"},
		{"blocklist-element", "PUT", "bad/x", "comp=blocklist", nil, "<BlockList><Other>QQ==</Other></BlockList>", 0, 400, "InvalidXmlDocument"},
		{"acl-xml", "PUT", "bad", "restype=container&comp=acl", nil, "<SignedIdentifiers><", 0, 400, "InvalidXmlDocument"},
		{"props-xml", "PUT", "", "restype=service&comp=properties", nil, "not xml", 0, 400, "InvalidXmlDocument"},
		{"no-blob-type", "PUT", "bad/y", "", nil, "data", 0, 400, "MissingRequiredHeader"},
		{"bad-blob-type", "PUT", "bad/y", "", hdr("x-ms-blob-type", "Nope"), "data", 0, 400, "InvalidHeaderValue"},
		{"page-size", "PUT", "bad/p2", "", hdr("x-ms-blob-type", "PageBlob", "x-ms-blob-content-length", "1000"), "", 0, 400, "InvalidHeaderValue"},
		{"page-too-big", "PUT", "bad/page", "comp=page", hdr("x-ms-page-write", "update", "x-ms-range", "bytes=0-5242879"), "", 5 << 20, 413, "RequestBodyTooLarge"},
		{"page-misaligned", "PUT", "bad/page", "comp=page", hdr("x-ms-page-write", "update", "x-ms-range", "bytes=1-512"), "", 512, 416, "InvalidPageRange"},
		{"page-length", "PUT", "bad/page", "comp=page", hdr("x-ms-page-write", "update", "x-ms-range", "bytes=0-1023"), "", 512, 400, "InvalidPageRange"},
		{"append-too-big", "PUT", "bad/app", "comp=appendblock", nil, "", 4<<20 + 1, 413, "RequestBodyTooLarge"},
		{"block-id", "PUT", "bad/x", "comp=block&blockid=%%%", nil, "x", 0, 400, ""},
		{"block-on-page", "PUT", "bad/page", "comp=block&blockid=QQ==", nil, "x", 0, 409, "InvalidBlobType"},
		{"lease-duration", "PUT", "bad/block", "comp=lease", hdr("x-ms-lease-action", "acquire", "x-ms-lease-duration", "5"), "", 0, 400, "InvalidHeaderValue"},
		{"md5-header", "PUT", "bad/z", "", hdr("x-ms-blob-type", "BlockBlob", "Content-MD5", "nope"), "x", 0, 400, "InvalidHeaderValue"},
		{"metadata-name", "PUT", "bad/z", "", hdr("x-ms-blob-type", "BlockBlob", "x-ms-meta-1bad", "v"), "x", 0, 400, "InvalidMetadata"},
		{"maxresults", "GET", "bad", "restype=container&comp=list&maxresults=0", nil, "", 0, 400, "InvalidQueryParameterValue"},
		{"range", "GET", "bad/block", "", hdr("x-ms-range", "bytes=5-"), "", 0, 416, "InvalidRange"},
		{"unknown-comp", "GET", "bad/block", "comp=nonsense", nil, "", 0, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, size := str(tc.body)
			if tc.bodySize > 0 {
				body, size = bytes.NewReader(make([]byte, tc.bodySize)), tc.bodySize
			}
			if tc.name == "append-too-big" {
				ab := e.client.ServiceClient().NewContainerClient("bad").NewAppendBlobClient("app")
				if _, err := ab.Create(ctx, nil); err != nil {
					t.Fatal(err)
				}
			}
			resp, out := c.do(tc.method, tc.path, tc.query, tc.header, body, size)
			if resp.StatusCode != tc.status || (tc.code != "" && resp.Header.Get("x-ms-error-code") != tc.code) {
				t.Fatalf("got %d %s (%s), want %d %s", resp.StatusCode, resp.Header.Get("x-ms-error-code"), out, tc.status, tc.code)
			}
		})
	}
	// Nothing the refused requests carried was kept.
	for _, name := range []string{"x", "y", "z", "p2"} {
		_, err := e.client.ServiceClient().NewContainerClient("bad").NewBlobClient(name).GetProperties(ctx, nil)
		wantCode(t, err, http.StatusNotFound, "BlobNotFound")
	}
}
