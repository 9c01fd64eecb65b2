package lb

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestBytesCountsWhatClientsSentAndGot sends a known body through an HTTP
// and a TCP endpoint: each endpoint's count covers the bytes both ways
// (HTTP adds its headers), and stays after the endpoint is withdrawn.
func TestBytesCountsWhatClientsSentAndGot(t *testing.T) {
	b := newBalancer(t)
	const size = 100 << 10
	body := bytes.Repeat([]byte("x"), size)

	url := publish(t, b, "acme/web/http", newBackend(t, "w").Backend)
	resp, err := http.Post(url+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(got) != size {
		t.Fatalf("echo returned %d bytes, want %d", len(got), size)
	}
	http.DefaultClient.CloseIdleConnections() // the server's reads of the request are done
	if n := b.Bytes()["acme/web/http"]; n < 2*size || n > 2*size+4096 {
		t.Errorf("http endpoint counted %d bytes, want 2×%d plus headers", n, size)
	}

	addr := publishTCP(t, b, echoServer(t, "e"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(body); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	if got, _ := io.ReadAll(c); len(got) != size {
		t.Fatalf("tcp echo returned %d bytes, want %d", len(got), size)
	}
	c.Close()
	// The balancer adds a direction's bytes when it ends; the echo's end
	// reached the client, so both copies returned or are returning.
	waitFor(t, "the tcp endpoint to count both directions", func() bool { return b.Bytes()["s/db/tcp"] == 2*size })

	if err := b.Update(nil); err != nil {
		t.Fatal(err)
	}
	if n := b.Bytes()["s/db/tcp"]; n != 2*size {
		t.Errorf("after the endpoint was withdrawn its count is %d, want %d", n, 2*size)
	}
}
