package blob

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// TestMetadataNameCase writes metadata names in mixed case with the SDK
// and finds them in that case in listings and on the wire.
func TestMetadataNameCase(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	md := map[string]*string{"MyKey": to.Ptr("v"), "lower": to.Ptr("w")}
	if _, err := e.client.CreateContainer(ctx, "cased", &azblob.CreateContainerOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.UploadBuffer(ctx, "cased", "doc.txt", []byte("x"), &azblob.UploadBufferOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	// The SDK lower-cases the names it reads from listings (its XML
	// helper does), so the listings are checked as sent.
	c := newRawClient(t, e)
	for _, q := range []struct{ path, query string }{
		{"cased", "restype=container&comp=list&include=metadata"},
		{"", "comp=list&include=metadata"},
	} {
		resp, body := c.do(http.MethodGet, q.path, q.query, nil, nil, 0)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<Metadata><MyKey>v</MyKey><lower>w</lower></Metadata>") {
			t.Errorf("%s?%s: %d %s", q.path, q.query, resp.StatusCode, body)
		}
	}
	// Go's HTTP client canonicalises response header names, so the SDK's
	// Get Blob Properties sees "Mykey"; the wire carries "MyKey".
	flat := func(m map[string]*string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = *v
		}
		return out
	}
	props, err := e.client.ServiceClient().NewContainerClient("cased").NewBlobClient("doc.txt").GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if props.Metadata["Mykey"] == nil || *props.Metadata["Mykey"] != "v" {
		t.Errorf("Get Blob Properties metadata = %v", flat(props.Metadata))
	}
	u, _ := url.Parse(e.endpoint + "/cased/doc.txt?" + c.sas)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodHead, u.String(), nil)
	req.Header.Set("x-ms-version", "2025-01-05")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	var head []string
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		head = append(head, line)
	}
	if !contains(head, "x-ms-meta-MyKey: v\r\n") || !contains(head, "x-ms-meta-lower: w\r\n") {
		t.Errorf("Get Blob Properties headers on the wire:\n%s", head)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}
