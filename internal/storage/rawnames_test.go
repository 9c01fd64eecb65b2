package storage_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// metaEcho answers with the metadata the service would store, one
// "name=value" line each, sorted.
type metaEcho struct{}

func (metaEcho) ServeStorage(w http.ResponseWriter, r *http.Request, _ *storage.Request) {
	md, err := storage.ReadMetadata(r.Header)
	if err != nil {
		storage.WriteError(w, r, storage.Blob, err)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	var lines []string
	for k, v := range md {
		lines = append(lines, k+"="+v)
	}
	slices.Sort(lines)
	_, _ = io.WriteString(w, strings.Join(lines, "\n"))
}

// TestMetadataNameCase sends pipelined requests with bodies of both
// framings, including a body that looks like a header, and checks that the
// service sees each request's metadata names as written.
func TestMetadataNameCase(t *testing.T) {
	ep := storagetest.Serve(t, storage.Blob, metaEcho{})
	host := strings.TrimPrefix(strings.TrimSuffix(ep, "/"+storage.DevAccount), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "line\r\nx-ms-meta-Evil: 1\r\n\r\n"
	reqs := "PUT /devstoreaccount1/c/a HTTP/1.1\r\nHost: x\r\nx-ms-meta-MyKey: v\r\nx-ms-meta-other_Key: w\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body +
		"PUT /devstoreaccount1/c/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nx-ms-meta-SecondOne: 2\r\n\r\n" +
		"5;ext=1\r\nx-ms-\r\n14\r\nmeta-Evil: 1\r\n\r\nabcd\r\n0\r\nx-ms-meta-Trailer: t\r\n\r\n" +
		"GET /devstoreaccount1/c/c HTTP/1.1\r\nHost: x\r\nx-ms-meta-ABC: 1\r\nx-ms-meta-abc: 2\r\nX-Ms-Meta-Canon: 3\r\n\r\n"
	// Written in small pieces, so lines and bodies straddle reads.
	go func() {
		for i := 0; i < len(reqs); i += 7 {
			_, _ = conn.Write([]byte(reqs[i:min(i+7, len(reqs))]))
		}
	}()
	br := bufio.NewReader(conn)
	for _, want := range []string{"MyKey=v\nother_Key=w", "SecondOne=2", "ABC=1,2\nCanon=3"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != want {
			t.Errorf("metadata = %d %q, want %q", resp.StatusCode, got, want)
		}
	}

	// Served without storage.Serve, the case is unknown: names are
	// lower-cased, as the services always stored them before.
	srv := httptest.NewServer(storage.NewFront(storage.Blob, storage.DevAccounts(), metaEcho{}, nil, nil))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/devstoreaccount1/c/d", nil)
	req.Header["x-ms-meta-MyKey"] = []string{"v"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "mykey=v" {
		t.Errorf("metadata without storage.Serve = %q, want mykey=v", got)
	}
}
