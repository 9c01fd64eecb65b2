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
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/weftcloud/weft/internal/storage"
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

// TestMetadataTooLarge sends every write that sets metadata with 8 KiB of
// names and values (accepted, Azure's limit) and with one byte more (400
// MetadataTooLarge), and checks a refused write changed nothing.
func TestMetadataTooLarge(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// "Big" is 3 bytes of name: the value fills the rest of the 8 KiB.
	fits := map[string]*string{"Big": to.Ptr(strings.Repeat("v", storage.MaxMetadataSize-3))}
	over := map[string]*string{"Big": to.Ptr(strings.Repeat("v", storage.MaxMetadataSize-2))}
	kept := map[string]*string{"Keep": to.Ptr("yes")}

	cc := e.client.ServiceClient().NewContainerClient("limits")
	_, err := cc.Create(ctx, &container.CreateOptions{Metadata: over})
	wantCode(t, err, http.StatusBadRequest, "MetadataTooLarge")
	if _, err := cc.GetProperties(ctx, nil); err == nil {
		t.Error("a refused Create Container made the container")
	}
	if _, err := cc.Create(ctx, &container.CreateOptions{Metadata: kept}); err != nil {
		t.Fatal(err)
	}
	_, err = cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: over})
	wantCode(t, err, http.StatusBadRequest, "MetadataTooLarge")
	if _, err := cc.SetMetadata(ctx, &container.SetMetadataOptions{Metadata: fits}); err != nil {
		t.Errorf("Set Container Metadata of 8 KiB: %v", err)
	}

	bb := cc.NewBlockBlobClient("doc")
	if _, err := bb.Upload(ctx, nopCloser("hello"), &blockblob.UploadOptions{Metadata: kept}); err != nil {
		t.Fatal(err)
	}
	src := bb.URL()
	bid := blockID(1)
	if _, err := bb.StageBlock(ctx, bid, nopCloser("new"), nil); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct {
		name  string
		write func(md map[string]*string) error
	}{
		{"Put Blob", func(md map[string]*string) error {
			_, err := bb.Upload(ctx, nopCloser("replaced"), &blockblob.UploadOptions{Metadata: md})
			return err
		}},
		{"Set Blob Metadata", func(md map[string]*string) error {
			_, err := bb.SetMetadata(ctx, md, nil)
			return err
		}},
		{"Put Block List", func(md map[string]*string) error {
			_, err := bb.CommitBlockList(ctx, []string{bid}, &blockblob.CommitBlockListOptions{Metadata: md})
			return err
		}},
		{"Snapshot Blob", func(md map[string]*string) error {
			_, err := bb.CreateSnapshot(ctx, &blob.CreateSnapshotOptions{Metadata: md})
			return err
		}},
		{"Copy Blob", func(md map[string]*string) error {
			_, err := cc.NewBlobClient("copy").StartCopyFromURL(ctx, src, &blob.StartCopyFromURLOptions{Metadata: md})
			return err
		}},
	} {
		err := op.write(over)
		wantCode(t, err, http.StatusBadRequest, "MetadataTooLarge")
		props, err := bb.GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(props.Metadata) != 1 || props.Metadata["Keep"] == nil || *props.ContentLength != 5 {
			t.Errorf("%s refused, but the blob changed: %d bytes, metadata %v", op.name, *props.ContentLength, props.Metadata)
		}
	}
	if _, err := cc.NewBlobClient("copy").GetProperties(ctx, nil); err == nil {
		t.Error("a refused Copy Blob made the copy")
	}
	if _, err := bb.SetMetadata(ctx, fits, nil); err != nil {
		t.Errorf("Set Blob Metadata of 8 KiB: %v", err)
	}
}
