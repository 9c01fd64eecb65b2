package conformance

// Blob service: Blob Batch.

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/weftcloud/weft/internal/storage"
)

// rawBatch is a batch body of the given sub-request lines, each part an
// unsigned request.
func rawBatch(lines ...string) []byte {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\n%s HTTP/1.1\r\nContent-Length: 0\r\n\r\n\r\n", i, l)
	}
	b.WriteString("--b--\r\n")
	return []byte(b.String())
}

func TestBlob_BlobBatch(t *testing.T) {
	cover(t, storage.Blob, "Blob Batch")
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c", "d"} {
		env.upload(t, cc, n, "x", nil)
	}
	exists := func(name string) bool {
		_, err := cc.NewBlobClient(name).GetProperties(ctx, nil)
		return err == nil
	}
	t.Run("success", func(t *testing.T) {
		bb, err := env.svc.NewBatchBuilder()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a", "b"} {
			if err := bb.Delete("box", n, nil); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := env.svc.SubmitBatch(ctx, bb, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Responses) != 2 || resp.Responses[0].Error != nil || resp.Responses[1].Error != nil {
			t.Fatalf("responses %+v", resp.Responses)
		}
		if exists("a") || exists("b") || !exists("c") {
			t.Errorf("after the batch: a %v b %v c %v", exists("a"), exists("b"), exists("c"))
		}
	})
	t.Run("set tier in a container", func(t *testing.T) {
		bb, err := cc.NewBatchBuilder()
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"c", "d"} {
			if err := bb.SetTier(n, blob.AccessTierCool, nil); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := cc.SubmitBatch(ctx, bb, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Responses {
			if r.Error != nil {
				t.Errorf("sub-response %d: %v", *r.ContentID, r.Error)
			}
		}
	})
	t.Run("answer", func(t *testing.T) {
		// 202 with a multipart/mixed answer; each failure is its own part.
		bb, err := env.svc.NewBatchBuilder()
		if err != nil {
			t.Fatal(err)
		}
		_ = bb.Delete("box", "c", nil)
		_ = bb.Delete("box", "absent", nil)
		_ = bb.Delete("nobox", "x", nil)
		resp, err := env.svc.SubmitBatch(ctx, bb, nil)
		if err != nil {
			t.Fatal(err)
		}
		if mt, _, _ := mime.ParseMediaType(*resp.ContentType); mt != "multipart/mixed" {
			t.Errorf("Content-Type %q", *resp.ContentType)
		}
		if len(resp.Responses) != 3 || resp.Responses[0].Error != nil {
			t.Fatalf("responses %+v", resp.Responses)
		}
		wantErr(t, resp.Responses[1].Error, http.StatusNotFound, "BlobNotFound")
		wantErr(t, resp.Responses[2].Error, http.StatusNotFound, "ContainerNotFound")
		if exists("c") {
			t.Error("c survived its deletion")
		}
	})
	t.Run("sub-requests authenticate", func(t *testing.T) {
		// A signed batch does not lend its credentials to an unsigned
		// sub-request.
		r := env.do(t, http.MethodPost, "/?comp=batch", map[string]string{"Content-Type": "multipart/mixed; boundary=b"},
			rawBatch("DELETE /"+storage.DevAccount+"/box/d"))
		r.want(t, http.StatusAccepted, "")
		if !strings.Contains(string(r.body), "HTTP/1.1 401") || !exists("d") {
			t.Errorf("unsigned sub-request: d exists %v, answer %s", exists("d"), r.body)
		}
	})
	t.Run("ExceedsMaxBatchRequestCount", func(t *testing.T) {
		// As Azure: 202, with one part that fails the whole batch.
		lines := make([]string, 257)
		for i := range lines {
			lines[i] = fmt.Sprintf("DELETE /%s/box/n%d", storage.DevAccount, i)
		}
		r := env.do(t, http.MethodPost, "/?comp=batch", map[string]string{"Content-Type": "multipart/mixed; boundary=b"}, rawBatch(lines...))
		r.want(t, http.StatusAccepted, "")
		if !strings.Contains(string(r.body), "HTTP/1.1 400") || !strings.Contains(string(r.body), "ExceedsMaxBatchRequestCount") {
			t.Errorf("answer %s", r.body)
		}
		bb, err := env.svc.NewBatchBuilder()
		if err != nil {
			t.Fatal(err)
		}
		for i := range 257 {
			_ = bb.Delete("box", fmt.Sprint(i), nil)
		}
		if _, err := env.svc.SubmitBatch(ctx, bb, nil); err == nil {
			t.Error("a batch of 257 succeeded")
		}
	})
	t.Run("InvalidInput", func(t *testing.T) {
		for name, body := range map[string][]byte{
			"mixed kinds":   rawBatch("DELETE /"+storage.DevAccount+"/box/d", "PUT /"+storage.DevAccount+"/box/d?comp=tier"),
			"other request": rawBatch("GET /" + storage.DevAccount + "/box/d"),
			"empty":         rawBatch(),
		} {
			r := env.do(t, http.MethodPost, "/?comp=batch", map[string]string{"Content-Type": "multipart/mixed; boundary=b"}, body)
			if r.status != http.StatusBadRequest || r.header.Get("x-ms-error-code") != "InvalidInput" {
				t.Errorf("%s: %d %s", name, r.status, r.header.Get("x-ms-error-code"))
			}
		}
		r := env.do(t, http.MethodPost, "/?comp=batch", map[string]string{"Content-Type": "text/plain"}, []byte("x"))
		r.want(t, http.StatusBadRequest, "InvalidHeaderValue")
		if !exists("d") {
			t.Error("a refused batch deleted d")
		}
	})
	t.Run("container scope", func(t *testing.T) {
		// A container's batch may only address its own blobs.
		other := env.container(t, "other")
		env.upload(t, other, "o", "x", nil)
		r := env.do(t, http.MethodPost, "/box?restype=container&comp=batch", map[string]string{"Content-Type": "multipart/mixed; boundary=b"},
			rawBatch("DELETE /"+storage.DevAccount+"/other/o"))
		r.want(t, http.StatusAccepted, "")
		if _, err := other.NewBlobClient("o").GetProperties(ctx, nil); err != nil {
			t.Errorf("a batch of box deleted other/o: %v", err)
		}
		if !strings.Contains(string(r.body), "HTTP/1.1 400") {
			t.Errorf("answer %s", r.body)
		}
		// Nor may an account's batch reach another account.
		r = env.do(t, http.MethodPost, "/?comp=batch", map[string]string{"Content-Type": "multipart/mixed; boundary=b"},
			rawBatch("DELETE /someoneelse/box/d"))
		r.want(t, http.StatusAccepted, "")
		if !strings.Contains(string(r.body), "HTTP/1.1 400") {
			t.Errorf("answer %s", r.body)
		}
	})
}
