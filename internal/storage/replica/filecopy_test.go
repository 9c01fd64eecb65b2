package replica

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// TestReturningReplicaFetchesOnlyWhatDiffers copies a primary with a
// 16 MiB disk to a replica, loses the replica, changes a few pages of the
// disk and some blobs, scribbles on the replica's copy of the disk and
// leaves a stray file there (as a former primary's unacknowledged writes
// would), and copies again: the second copy fetches a few blocks, not the
// disk, and the replica, served, holds exactly the primary's data.
func TestReturningReplicaFetchesOnlyWhatDiffers(t *testing.T) {
	const diskSize = 16 << 20
	c := newCluster(t)
	cs := c.primary.ConnectionString()
	setUp(t, cs)
	ctx := context.Background()
	blobs, _ := azblob.NewClientFromConnectionString(cs, nil)
	container := blobs.ServiceClient().NewContainerClient("data")
	disk := container.NewPageBlobClient("big-disk")
	if _, err := disk.Create(ctx, diskSize, nil); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, diskSize)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(want[:12<<20]) // the last 4 MiB stay a hole
	for off := 0; off < 12<<20; off += 4 << 20 {
		if _, err := disk.UploadPages(ctx, streamOf(want[off:off+4<<20]), blob.HTTPRange{Offset: int64(off), Count: 4 << 20}, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := newAcked()
	for _, name := range []string{"kept", "removed"} {
		body := bytes.Repeat([]byte(name), 100<<10)
		if _, err := blobs.UploadBuffer(ctx, "data", name, body, nil); err != nil {
			t.Fatal(err)
		}
		a.blobs[name] = body
	}
	if err := c.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	first := c.receiver.Copied()
	if first.Fetched < 12<<20 {
		t.Fatalf("the first copy fetched %d bytes, want the disk's 12 MiB of data at least", first.Fetched)
	}

	// The replica is lost; the primary drops it at its next write.
	c.rsrv.Close()
	if _, err := container.NewBlobClient("removed").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	delete(a.blobs, "removed")
	page := bytes.Repeat([]byte{7}, 4096)
	for _, off := range []int{0, 5 << 20} {
		if _, err := disk.UploadPages(ctx, streamOf(page), blob.HTTPRange{Offset: int64(off), Count: 4096}, nil); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], page)
	}
	if _, err := disk.ClearPages(ctx, blob.HTTPRange{Offset: 8 << 20, Count: 1 << 20}, nil); err != nil {
		t.Fatal(err)
	}
	clear(want[8<<20 : 9<<20])
	if got := c.shipper.Replicas(); len(got) != 0 {
		t.Fatalf("replicas after the replica was lost: %v", got)
	}
	a.blobs["new"] = []byte("written while the replica was away")
	if _, err := blobs.UploadBuffer(ctx, "data", "new", a.blobs["new"], nil); err != nil {
		t.Fatal(err)
	}

	// What a former primary might hold that no one acknowledged.
	scribbleOnLargest(t, filepath.Join(c.rdir, dataDir), 10<<20)
	stray := filepath.Join(c.rdir, dataDir, "00", "stray")
	os.MkdirAll(filepath.Dir(stray), 0o755)
	if err := os.WriteFile(stray, []byte("never acknowledged"), 0o644); err != nil {
		t.Fatal(err)
	}

	c.rsrv = httptest.NewServer(c.receiver)
	t.Cleanup(c.rsrv.Close)
	if err := c.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	second := c.receiver.Copied()
	t.Logf("first copy %+v, second %+v", first, second)
	// Two pages, the scribble and the new blob: four blocks at most; the
	// cleared megabyte comes as zeroes.
	if second.Fetched > 4*copyBlock || second.Same < 10<<20 || second.Zeroed < 1<<20 {
		t.Fatalf("the second copy fetched %d bytes, zeroed %d and kept %d; want at most %d fetched", second.Fetched, second.Zeroed, second.Same, 4*copyBlock)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("the stray file is still on the replica: %v", err)
	}

	served := c.promote().ConnectionString()
	check(t, served, a)
	replica, _ := azblob.NewClientFromConnectionString(served, nil)
	resp, err := replica.DownloadStream(ctx, "data", "big-disk", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("the replica's disk differs from the primary's (%d bytes)", got.Len())
	}
}

// scribbleOnLargest overwrites a block of the largest file under dir at off.
func scribbleOnLargest(t *testing.T, dir string, off int64) {
	t.Helper()
	var largest string
	var size int64
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Size() > size {
			largest, size = path, info.Size()
		}
		return nil
	})
	f, err := os.OpenFile(largest, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xee}, 4096), off); err != nil {
		t.Fatal(err)
	}
}
