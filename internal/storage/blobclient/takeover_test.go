package blobclient_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// TestDiskIORidesThroughATakeOver is a VM disk's I/O while the storage
// changes servers: requests answered 503 (no primary yet) wait until the
// storage serves, and a client whose server is gone turns to another
// server's endpoint.
func TestDiskIORidesThroughATakeOver(t *testing.T) {
	ctx := context.Background()
	srv, err := storageserver.Listen(storageserver.Config{Data: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	// The new primary opens its storage a second after the first request.
	opened := time.AfterFunc(time.Second, func() {
		if err := srv.Open(nil); err != nil {
			t.Error(err)
		}
	})
	defer opened.Stop()
	start := time.Now()
	c := blobclient.New(srv.URL(storage.Blob), storage.DevAccount, devKey(t))
	if err := c.CreateContainer(ctx, "disks"); err != nil {
		t.Fatalf("creating a container while the storage had no primary: %v", err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("the request was answered after %s, before the storage served", waited)
	}
	if err := c.CreatePageBlob(ctx, "disks", "root", 1<<20); err != nil {
		t.Fatal(err)
	}

	// This client's own server is gone (nothing listens at its address).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String()
	ln.Close()
	node := blobclient.New(gone, storage.DevAccount, devKey(t)).WithFallbacks(gone, srv.URL(storage.Blob))
	page := bytes.Repeat([]byte("disk"), 1024)
	if err := node.PutPages(ctx, "disks", "root", 8192, page, ""); err != nil {
		t.Fatalf("writing pages with the client's server gone: %v", err)
	}
	resp, err := node.Get(ctx, "disks", "root", "bytes=8192-12287")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, page) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(page))
	}
}
