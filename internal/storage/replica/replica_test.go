package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// cluster is a primary's storage with its shipper, and a replica's
// receiver, each behind its own HTTP server as on two servers.
type cluster struct {
	t        *testing.T
	primary  *storageserver.Server
	shipper  *Shipper
	receiver *Receiver
	pdir     string
	rdir     string
	rsrv     *httptest.Server
	dropped  atomic.Value // the name last dropped
	dropErr  error
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, pdir: t.TempDir(), rdir: t.TempDir()}
	psrv := httptest.NewServer(FileHandler(c.pdir, func() error { return nil }))
	t.Cleanup(psrv.Close)
	src := Source{Name: "a", Epoch: 1, API: psrv.URL}
	c.shipper = NewShipper(ShipperConfig{Dir: c.pdir, Source: src, Client: http.DefaultClient, Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil)),
		Drop: func(ctx context.Context, name string) error {
			c.dropped.Store(name)
			return c.dropErr
		}})
	var err error
	if c.primary, err = storageserver.Listen(storageserver.Config{Data: c.pdir}); err != nil {
		t.Fatal(err)
	}
	if err := c.primary.Open(c.shipper.For); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.primary.Close() })
	c.receiver, err = OpenReceiver(ReceiverConfig{Dir: c.rdir, Client: http.DefaultClient,
		Accept: func(s Source) error {
			if s.Epoch < 1 {
				return errors.New("stale epoch")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.receiver.Close() })
	c.rsrv = httptest.NewServer(c.receiver)
	t.Cleanup(c.rsrv.Close)
	return c
}

func (c *cluster) catchUp(ctx context.Context) error {
	return c.shipper.CatchUp(ctx, "b", c.rsrv.URL, c.primary.Databases(), func(context.Context) error { return nil })
}

// promote stops the primary as if lost and serves the replica's data.
func (c *cluster) promote() *storageserver.Server {
	c.t.Helper()
	c.shipper.Close()
	c.primary.Close()
	c.rsrv.Close()
	if err := c.receiver.Close(); err != nil {
		c.t.Fatal(err)
	}
	s, err := storageserver.Start(storageserver.Config{Data: c.rdir})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

// acked records what the storage answered, to find on the replica.
type acked struct {
	mu       sync.Mutex
	blobs    map[string][]byte
	pages    map[int]byte // page index -> the byte it was filled with
	messages map[string]bool
	entities map[string]string
	static   []byte // written at 512 KiB of the page blob static-disk
}

// writers runs clients of all three services against cs until stop,
// recording every write the storage acknowledged.
func writers(t *testing.T, cs string, stop <-chan struct{}, a *acked, prefix string) *sync.WaitGroup {
	ctx := context.Background()
	blobs, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	queues, err := azqueue.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := aztables.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	pages := blobs.ServiceClient().NewContainerClient("data").NewPageBlobClient("disk")
	queue := queues.NewQueueClient("work")
	table := tables.NewClient("things")
	var wg sync.WaitGroup
	run := func(fn func(i int) error) {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(i); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	run(func(i int) error {
		name := fmt.Sprintf("%s-%d", prefix, i)
		body := bytes.Repeat([]byte(name), 1+i%3000) // some small, some over the inline size
		if _, err := blobs.UploadBuffer(ctx, "data", name, body, nil); err != nil {
			return err
		}
		a.mu.Lock()
		a.blobs[name] = body
		a.mu.Unlock()
		return nil
	})
	run(func(i int) error {
		page := i % 64
		fill := byte(i)
		if _, err := pages.UploadPages(ctx, streamOf(bytes.Repeat([]byte{fill}, 512)), blobRange(page), nil); err != nil {
			return err
		}
		a.mu.Lock()
		a.pages[page] = fill
		a.mu.Unlock()
		return nil
	})
	run(func(i int) error {
		text := fmt.Sprintf("%s-%d", prefix, i)
		if _, err := queue.EnqueueMessage(ctx, text, nil); err != nil {
			return err
		}
		a.mu.Lock()
		a.messages[text] = true
		a.mu.Unlock()
		return nil
	})
	run(func(i int) error {
		key := fmt.Sprintf("%s-%d", prefix, i)
		entity := fmt.Sprintf(`{"PartitionKey":"p","RowKey":%q,"Value":%q}`, key, key+"!")
		if _, err := table.UpsertEntity(ctx, []byte(entity), nil); err != nil {
			return err
		}
		a.mu.Lock()
		a.entities[key] = key + "!"
		a.mu.Unlock()
		return nil
	})
	return &wg
}

// writeStatic writes blobs in files of their own and pages of a second
// page blob, never written again: only the copy can bring them.
func writeStatic(t *testing.T, cs string, a *acked) {
	ctx := context.Background()
	blobs, _ := azblob.NewClientFromConnectionString(cs, nil)
	for i := range 8 {
		name := fmt.Sprintf("static-%d", i)
		body := bytes.Repeat([]byte{byte(i + 1)}, 256<<10)
		if _, err := blobs.UploadBuffer(ctx, "data", name, body, nil); err != nil {
			t.Fatal(err)
		}
		a.blobs[name] = body
	}
	static := blobs.ServiceClient().NewContainerClient("data").NewPageBlobClient("static-disk")
	if _, err := static.Create(ctx, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	page := bytes.Repeat([]byte("sparse"), 512*8/6+1)[:512*8]
	if _, err := static.UploadPages(ctx, streamOf(page), blob.HTTPRange{Offset: 512 << 10, Count: int64(len(page))}, nil); err != nil {
		t.Fatal(err)
	}
	a.static = page
}

// setUp makes the container, page blob, queue and table the writers use.
func setUp(t *testing.T, cs string) {
	ctx := context.Background()
	blobs, _ := azblob.NewClientFromConnectionString(cs, nil)
	if _, err := blobs.CreateContainer(ctx, "data", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.ServiceClient().NewContainerClient("data").NewPageBlobClient("disk").Create(ctx, 64*512, nil); err != nil {
		t.Fatal(err)
	}
	queues, _ := azqueue.NewServiceClientFromConnectionString(cs, nil)
	if _, err := queues.CreateQueue(ctx, "work", nil); err != nil {
		t.Fatal(err)
	}
	tables, _ := aztables.NewServiceClientFromConnectionString(cs, nil)
	if _, err := tables.CreateTable(ctx, "things", nil); err != nil {
		t.Fatal(err)
	}
}

// check finds every acknowledged write in the storage at cs.
func check(t *testing.T, cs string, a *acked) {
	t.Helper()
	ctx := context.Background()
	blobs, _ := azblob.NewClientFromConnectionString(cs, nil)
	for name, want := range a.blobs {
		resp, err := blobs.DownloadStream(ctx, "data", name, nil)
		if err != nil {
			t.Fatalf("blob %s: %v", name, err)
		}
		var got bytes.Buffer
		_, err = got.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("blob %s: %d bytes (err %v), want %d", name, got.Len(), err, len(want))
		}
	}
	resp, err := blobs.DownloadStream(ctx, "data", "disk", nil)
	if err != nil {
		t.Fatal(err)
	}
	var disk bytes.Buffer
	disk.ReadFrom(resp.Body)
	resp.Body.Close()
	for page, fill := range a.pages {
		if got := disk.Bytes()[page*512 : (page+1)*512]; !bytes.Equal(got, bytes.Repeat([]byte{fill}, 512)) {
			t.Fatalf("page %d: starts %d, want %d", page, got[0], fill)
		}
	}
	if a.static != nil {
		resp, err := blobs.DownloadStream(ctx, "data", "static-disk", nil)
		if err != nil {
			t.Fatal(err)
		}
		var static bytes.Buffer
		static.ReadFrom(resp.Body)
		resp.Body.Close()
		want := make([]byte, 1<<20)
		copy(want[512<<10:], a.static)
		if !bytes.Equal(static.Bytes(), want) {
			t.Fatalf("the page blob written before the copy differs (%d bytes)", static.Len())
		}
	}
	queues, _ := azqueue.NewServiceClientFromConnectionString(cs, nil)
	queue := queues.NewQueueClient("work")
	seen := map[string]bool{}
	for len(seen) < len(a.messages) {
		got, err := queue.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr(int32(32)), VisibilityTimeout: to.Ptr(int32(600))})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Messages) == 0 {
			break
		}
		for _, m := range got.Messages {
			seen[*m.MessageText] = true
		}
	}
	for text := range a.messages {
		if !seen[text] {
			t.Fatalf("message %s lost (%d of %d seen)", text, len(seen), len(a.messages))
		}
	}
	tables, _ := aztables.NewServiceClientFromConnectionString(cs, nil)
	table := tables.NewClient("things")
	for key, want := range a.entities {
		got, err := table.GetEntity(ctx, "p", key, nil)
		if err != nil {
			t.Fatalf("entity %s: %v", key, err)
		}
		if !bytes.Contains(got.Value, []byte(want)) {
			t.Fatalf("entity %s: %s, want value %s", key, got.Value, want)
		}
	}
}

func newAcked() *acked {
	return &acked{blobs: map[string][]byte{}, pages: map[int]byte{}, messages: map[string]bool{}, entities: map[string]string{}}
}

// TestReplicaHoldsEveryAcknowledgedWrite copies a primary to a replica
// while clients of all three services write, goes on writing with the
// replica in sync, then loses the primary: the replica's data, served,
// holds every write the primary acknowledged.
func TestReplicaHoldsEveryAcknowledgedWrite(t *testing.T) {
	c := newCluster(t)
	cs := c.primary.ConnectionString()
	setUp(t, cs)
	a := newAcked()
	writeStatic(t, cs, a)
	stop := make(chan struct{})
	wg := writers(t, cs, stop, a, "w")
	time.Sleep(300 * time.Millisecond) // data before the copy
	if err := c.catchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.shipper.Replicas(); !got["b"] {
		t.Fatalf("replicas after the copy: %v, want b in sync", got)
	}
	time.Sleep(500 * time.Millisecond) // data shipped live
	close(stop)
	wg.Wait()
	if len(a.blobs) == 0 || len(a.messages) == 0 || len(a.entities) == 0 || len(a.pages) == 0 {
		t.Fatalf("the writers wrote too little: %d blobs, %d messages, %d entities, %d pages", len(a.blobs), len(a.messages), len(a.entities), len(a.pages))
	}
	t.Logf("%d blobs, %d messages, %d entities", len(a.blobs), len(a.messages), len(a.entities))
	// Once the writers stopped, the replica catches up: no lag left.
	c.waitInSync()
	check(t, c.promote().ConnectionString(), a)
}

// waitInSync waits until replica b is in sync with no lag left.
func (c *cluster) waitInSync() {
	c.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		lag, ok := c.shipper.Lag()["b"]
		if ok && lag.InSync && lag.Ops == 0 && lag.Bytes == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replica b's lag once the writers stopped: %+v (listed %v), want in sync with none", lag, ok)
		}
	}
}

// TestFailedReplicaIsDroppedFirst stops an in-sync replica: the next write
// waits until the replica left the in-sync set, then succeeds; when
// leaving fails, writes fail and the shipper is dead.
func TestFailedReplicaIsDroppedFirst(t *testing.T) {
	for _, dropFails := range []bool{false, true} {
		t.Run(fmt.Sprintf("dropFails=%v", dropFails), func(t *testing.T) {
			c := newCluster(t)
			cs := c.primary.ConnectionString()
			setUp(t, cs)
			if err := c.catchUp(context.Background()); err != nil {
				t.Fatal(err)
			}
			if dropFails {
				c.dropErr = errors.New("no leader")
			}
			c.rsrv.CloseClientConnections()
			c.rsrv.Close()
			blobs, _ := azblob.NewClientFromConnectionString(cs, &azblob.ClientOptions{})
			_, err := blobs.UploadBuffer(context.Background(), "data", "after", []byte("x"), nil)
			if got, _ := c.dropped.Load().(string); got != "b" {
				t.Fatalf("dropped %q, want b", got)
			}
			if dropFails {
				if err == nil {
					t.Fatal("a write succeeded without its replica and without dropping it")
				}
				select {
				case <-c.shipper.Dead():
				default:
					t.Fatal("the shipper is not dead")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.shipper.Replicas()) != 0 {
				t.Fatalf("replicas: %v, want none", c.shipper.Replicas())
			}
		})
	}
}

// TestStaleSourceIsRefused: a replica refuses a primary of an old epoch.
func TestStaleSourceIsRefused(t *testing.T) {
	c := newCluster(t)
	c.shipper.src.Epoch = 0
	err := c.catchUp(context.Background())
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("catch-up from a stale primary: %v, want 409", err)
	}
}

func streamOf(b []byte) *readSeekCloser { return &readSeekCloser{bytes.NewReader(b)} }

type readSeekCloser struct{ *bytes.Reader }

func (readSeekCloser) Close() error { return nil }

func blobRange(page int) blob.HTTPRange {
	return blob.HTTPRange{Offset: int64(page) * 512, Count: 512}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestCatchUpOutpacedByWriters copies a primary to a replica behind a
// link slower than clients write 1 MiB pages of a disk: the queue would
// never get level, so writes start waiting for the replica; the copy ends,
// and the replica, served, holds every page acknowledged.
func TestCatchUpOutpacedByWriters(t *testing.T) {
	const slots, writers, link = 64, 8, 40 << 20 // 1 MiB slots; bytes/s
	c := newCluster(t)
	c.rsrv.Close()
	c.rsrv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(r.ContentLength) * time.Second / link)
		c.receiver.ServeHTTP(w, r)
	}))
	t.Cleanup(c.rsrv.Close)
	cs := c.primary.ConnectionString()
	blobs, _ := azblob.NewClientFromConnectionString(cs, nil)
	ctx := context.Background()
	if _, err := blobs.CreateContainer(ctx, "data", nil); err != nil {
		t.Fatal(err)
	}
	disk := blobs.ServiceClient().NewContainerClient("data").NewPageBlobClient("disk")
	if _, err := disk.Create(ctx, slots<<20, nil); err != nil {
		t.Fatal(err)
	}
	var acked [slots]atomic.Int32 // the byte each slot was last filled with, +1
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				slot := w + writers*(i%(slots/writers)) // each slot has one writer
				fill := byte(i)
				page := blob.HTTPRange{Offset: int64(slot) << 20, Count: 1 << 20}
				if _, err := disk.UploadPages(ctx, streamOf(bytes.Repeat([]byte{fill}, 1<<20)), page, nil); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				acked[slot].Store(int32(fill) + 1)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	copyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := c.catchUp(copyCtx)
	time.Sleep(200 * time.Millisecond) // writes that wait for the replica
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("catch-up under writes: %v", err)
	}

	served, _ := azblob.NewClientFromConnectionString(c.promote().ConnectionString(), nil)
	resp, err := served.DownloadStream(ctx, "data", "disk", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	got.ReadFrom(resp.Body)
	resp.Body.Close()
	for slot := range slots {
		want := acked[slot].Load()
		if want == 0 {
			continue
		}
		if b := got.Bytes()[slot<<20]; int32(b)+1 != want || !bytes.Equal(got.Bytes()[slot<<20:(slot+1)<<20], bytes.Repeat([]byte{b}, 1<<20)) {
			t.Fatalf("slot %d: starts %d, want %d throughout", slot, b, want-1)
		}
	}
}
