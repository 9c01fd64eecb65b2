package blobclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/blobclient/blobtest"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

func newClient(t *testing.T, key []byte) *blobclient.Client { return blobtest.DevClient(t, key) }

func devKey(t *testing.T) []byte {
	key, err := base64.StdEncoding.DecodeString(storage.DevKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestPutGetDelete(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, devKey(t))
	if err := c.CreateContainer(ctx, "images"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateContainer(ctx, "images"); err != nil {
		t.Fatalf("second create: %v", err)
	}
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	name := "files/sha256 with space"
	if err := c.Put(ctx, "images", name, bytes.NewReader(data), int64(len(data)), blobclient.PutOptions{IfNoneExists: true}); err != nil {
		t.Fatal(err)
	}
	err := c.Put(ctx, "images", name, bytes.NewReader(data), int64(len(data)), blobclient.PutOptions{IfNoneExists: true})
	if !errors.Is(err, blobclient.ErrExists) {
		t.Fatalf("put over an existing blob with IfNoneExists: %v, want ErrExists", err)
	}
	if n, err := c.Size(ctx, "images", name); err != nil || n != int64(len(data)) {
		t.Fatalf("Size = %d, %v; want %d", n, err, len(data))
	}
	resp, err := c.Get(ctx, "images", name, "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes back, not what was put", len(got))
	}
	resp, err = c.Get(ctx, "images", name, "bytes=10-19")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data[10:20]) {
		t.Fatalf("range: got %q", got)
	}
	if err := c.Put(ctx, "images", "empty", nil, 0, blobclient.PutOptions{}); err != nil {
		t.Fatalf("empty put: %v", err)
	}
	if err := c.Delete(ctx, "images", name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Size(ctx, "images", name); !errors.Is(err, blobclient.ErrNotFound) {
		t.Fatalf("Size after delete: %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "images", name); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
}

func TestWrongKeyIsRefused(t *testing.T) {
	c := newClient(t, []byte("not the key"))
	err := c.CreateContainer(context.Background(), "images")
	if err == nil {
		t.Fatal("a request signed with the wrong key was accepted")
	}
}

func TestSASReachesOnlyItsBlob(t *testing.T) {
	ctx := context.Background()
	srv, err := storageserver.Start(storageserver.Config{Data: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	key := devKey(t)
	admin := blobclient.New(srv.URL(storage.Blob), storage.DevAccount, key)
	admin.CreateContainer(ctx, "disks")
	for _, b := range []string{"mine", "other"} {
		if err := admin.CreatePageBlob(ctx, "disks", b, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	sas := storage.BlobSAS(storage.DevAccount, key, "disks", "mine", "rw", time.Now().Add(time.Hour))
	c := blobclient.NewSAS(srv.URL(storage.Blob), storage.DevAccount, sas)
	page := bytes.Repeat([]byte{7}, 512)
	if err := c.PutPages(ctx, "disks", "mine", 512, page, ""); err != nil {
		t.Fatalf("write through the SAS: %v", err)
	}
	resp, err := c.Get(ctx, "disks", "mine", "bytes=512-1023")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, page) {
		t.Error("read back through the SAS differs")
	}
	if err := c.PutPages(ctx, "disks", "other", 0, page, ""); err == nil {
		t.Error("a SAS for one blob wrote another")
	}
	expired := blobclient.NewSAS(srv.URL(storage.Blob), storage.DevAccount,
		storage.BlobSAS(storage.DevAccount, key, "disks", "mine", "rw", time.Now().Add(-time.Minute)))
	if _, err := expired.Size(ctx, "disks", "mine"); err == nil {
		t.Error("an expired SAS was accepted")
	}
}

// TestList pages through more blobs than one answer holds.
func TestList(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, devKey(t))
	if err := c.CreateContainer(ctx, "images"); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	const n = 5003 // past the 5,000 a page holds
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if err := c.Put(ctx, "images", fmt.Sprintf("files/%05d", i), nil, 0, blobclient.PutOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Put(ctx, "images", "other", nil, 0, blobclient.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := c.List(ctx, "images", "files/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || got[0].Name != "files/00000" || got[n-1].Name != fmt.Sprintf("files/%05d", n-1) {
		t.Fatalf("listed %d blobs (first %+v), want %d under files/", len(got), got[0], n)
	}
	if got[0].LastModified.Before(before.Truncate(time.Second)) || got[0].LastModified.After(time.Now()) {
		t.Errorf("Last-Modified %s, want about now", got[0].LastModified)
	}
	if _, err := c.List(ctx, "missing", ""); !errors.Is(err, blobclient.ErrNotFound) {
		t.Errorf("listing a missing container: %v, want ErrNotFound", err)
	}
}

// TestContainers: containers are listed by name, across pages, and
// deleted with their blobs; List reports each blob's size.
func TestContainers(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, devKey(t))
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("c%02d", i)
		want = append(want, name)
		if err := c.CreateContainer(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("containers %v, want %v", got, want)
	}
	if err := c.Put(ctx, "c03", "a", bytes.NewReader([]byte("hello")), 5, blobclient.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	blobs, err := c.List(ctx, "c03", "")
	if err != nil || len(blobs) != 1 || blobs[0].Size != 5 {
		t.Fatalf("List = %+v, %v; want one blob of 5 bytes", blobs, err)
	}
	if err := c.DeleteContainer(ctx, "c03"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteContainer(ctx, "c03"); !errors.Is(err, blobclient.ErrNotFound) {
		t.Fatalf("deleting it again: %v, want ErrNotFound", err)
	}
	if got, _ := c.Containers(ctx); len(got) != 6 {
		t.Fatalf("after the delete: %v", got)
	}
}
