package storage

import (
	"bytes"
	"net/http"
	"testing"
)

// FuzzReadBatch reads any body as a Blob Batch. Properties: a bad body is
// a 4xx storage error, never a panic; an accepted one has 1 or more
// sub-requests, all Delete Blob or all Set Blob Tier, each addressed to the
// batch's host.
func FuzzReadBatch(f *testing.F) {
	f.Add([]byte("--b\r\nContent-Type: application/http\r\nContent-ID: 0\r\n\r\nDELETE /acct/box/a HTTP/1.1\r\nContent-Length: 0\r\n\r\n\r\n--b--\r\n"))
	f.Add([]byte("--b\r\nContent-Type: application/http\r\n\r\nPUT /acct/box/a?comp=tier HTTP/1.1\r\nx-ms-access-tier: Cool\r\n\r\n\r\n--b--\r\n"))
	f.Add([]byte("--b\r\n\r\nGET / HTTP/1.1\r\n\r\n--b--"))
	f.Add([]byte("--b--"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/acct/?comp=batch", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "multipart/mixed; boundary=b")
		subs, err := readBatch(r)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if len(subs) == 0 {
			t.Fatal("accepted an empty batch")
		}
		for _, s := range subs {
			kind := s.Method + " " + s.URL.Query().Get("comp")
			if kind != subs[0].Method+" "+subs[0].URL.Query().Get("comp") || (kind != "DELETE " && kind != "PUT tier") || s.Host != r.Host {
				t.Fatalf("accepted sub-request %s %s (host %s) with first %s", s.Method, s.URL, s.Host, subs[0].Method)
			}
		}
	})
}
