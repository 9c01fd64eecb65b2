package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
	"github.com/weftcloud/weft/internal/vfs/crashfs"
)

// serveOn opens the Blob service in dir on fs (nil: the real disk) and
// returns an SDK client of it that does not retry.
func serveOn(t *testing.T, dir string, fs *crashfs.FS) (*Service, *azblob.Client) {
	t.Helper()
	opt := storage.Options{Logger: slog.New(slog.DiscardHandler)}
	if fs != nil {
		opt.FS = fs
	}
	svc, err := OpenWith(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	ep := storagetest.Serve(t, storage.Blob, svc)
	client, err := azblob.NewClientFromConnectionString(storagetest.ConnectionString(ep, "", ""),
		&azblob.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	return svc, client
}

// readSeekerOf dresses a stream up as the ReadSeeker the SDK wants, with a
// declared length; it cannot really seek.
func readSeekerOf(r io.Reader, n int64) io.ReadSeeker { return &fakeSeeker{r: r, n: n} }

type fakeSeeker struct {
	r io.Reader
	n int64
}

func (f *fakeSeeker) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *fakeSeeker) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekEnd {
		return f.n, nil
	}
	return 0, nil
}

// cutBlobs writes blobs of every size (inline and in files) and pages of a
// page blob from several clients, cuts the power under them, reopens the
// service from what the cut left and returns the acknowledged writes it
// lost. ignore, when set, makes the syncs of those paths do nothing.
func cutBlobs(t *testing.T, ignore func(dir, path string) bool) []string {
	dir := t.TempDir()
	fs := crashfs.New(t, dir)
	if ignore != nil {
		fs.IgnoreSyncs(func(p string) bool { return ignore(dir, p) })
	}
	_, client := serveOn(t, dir, fs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := client.CreateContainer(ctx, "crash", nil); err != nil {
		t.Fatal(err)
	}
	cc := client.ServiceClient().NewContainerClient("crash")
	pb := cc.NewPageBlobClient("disk")
	if _, err := pb.Create(ctx, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	type acked struct {
		size int
		seed uint64
	}
	var mu sync.Mutex
	blobs := map[string]acked{}
	pages := map[int64]uint64{}
	enough := make(chan struct{})
	half := make(chan struct{})
	// A blob whose body stops halfway: it must never appear.
	go func() {
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write(make([]byte, 2<<20))
			close(half)
			<-ctx.Done()
			pw.CloseWithError(ctx.Err())
		}()
		_, _ = cc.NewBlockBlobClient("half").Upload(ctx, streaming.NopCloser(readSeekerOf(pr, 4<<20)), nil)
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				seed := uint64(w*1_000_000 + i)
				size := []int{100, 5000, 70_000, 300_000}[i%4]
				name := fmt.Sprintf("b-%d-%d", w, i)
				if _, err := client.UploadBuffer(ctx, "crash", name, randBytes(size, seed), nil); err != nil {
					if ctx.Err() == nil {
						t.Errorf("upload %s: %v", name, err)
					}
					return
				}
				mu.Lock()
				blobs[name] = acked{size, seed}
				if len(blobs) == 24 {
					close(enough)
				}
				mu.Unlock()
				off := int64((w*64 + i%64) * 4096)
				if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(randBytes(4096, seed))), blob.HTTPRange{Offset: off, Count: 4096}, nil); err != nil {
					if ctx.Err() == nil {
						t.Errorf("upload pages at %d: %v", off, err)
					}
					return
				}
				mu.Lock()
				pages[off] = seed
				mu.Unlock()
			}
		})
	}
	<-enough
	<-half
	// The writes to check are those recorded when the power is cut: a
	// writer blocked on mu meanwhile may hold an acknowledgement that came
	// after the cut, and records it once mu is free.
	mu.Lock()
	img := fs.Crash()
	ackedBlobs, ackedPages := maps.Clone(blobs), maps.Clone(pages)
	mu.Unlock()
	cancel()
	wg.Wait()

	// The cut upload's goroutines may still be running: the reads get
	// their own variables.
	_, reopened := serveOn(t, img, nil)
	rctx := context.Background()
	rcc := reopened.ServiceClient().NewContainerClient("crash")
	var lost []string
	for name, a := range ackedBlobs {
		resp, err := rcc.NewBlobClient(name).DownloadStream(rctx, nil)
		if err != nil {
			lost = append(lost, name+": "+err.Error())
			continue
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, randBytes(a.size, a.seed)) {
			lost = append(lost, fmt.Sprintf("%s: %d bytes read back differ from the %d acknowledged", name, len(got), a.size))
		}
	}
	var disk []byte
	resp, err := rcc.NewBlobClient("disk").DownloadStream(rctx, nil)
	if err == nil {
		disk, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		lost = append(lost, "page blob: "+err.Error())
		disk = make([]byte, 1<<20)
	}
	for off, seed := range ackedPages {
		// Each offset is written once in a run this short.
		if !bytes.Equal(disk[off:off+4096], randBytes(4096, seed)) {
			lost = append(lost, fmt.Sprintf("page at %d", off))
		}
	}
	_, err = rcc.NewBlockBlobClient("half").GetProperties(rctx, nil)
	wantCode(t, err, 404, "BlobNotFound")
	t.Logf("%d blobs and %d page writes acknowledged before the cut, %d lost", len(ackedBlobs), len(ackedPages), len(lost))
	return lost
}

// TestPowerCut: every blob and page acknowledged before a power cut is
// read back after it; the blob whose upload was cut is not there.
func TestPowerCut(t *testing.T) {
	if lost := cutBlobs(t, nil); len(lost) > 0 {
		t.Errorf("%d acknowledged writes lost: %v", len(lost), lost[:min(len(lost), 5)])
	}
}

// TestPowerCutCatchesAMissingSync shows that TestPowerCut can fail: with
// the fdatasync of data files made to do nothing, a cut loses blobs.
func TestPowerCutCatchesAMissingSync(t *testing.T) {
	data := func(dir, p string) bool { return strings.HasPrefix(p, filepath.Join(dir, "data")+"/") }
	if lost := cutBlobs(t, data); len(lost) == 0 {
		t.Errorf("no acknowledged write lost with the data files' syncs ignored: the power-cut test cannot fail")
	}
}

// TestDiskFull: while the disk is full, uploads are answered 503
// ServerBusy (which clients retry) and deletes work and free space; once
// there is room again, uploads succeed, without a restart.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	fs := crashfs.New(t, dir)
	_, client := serveOn(t, dir, fs)
	ctx := context.Background()
	if _, err := client.CreateContainer(ctx, "full", nil); err != nil {
		t.Fatal(err)
	}
	big := randBytes(300_000, 1)
	if _, err := client.UploadBuffer(ctx, "full", "old", big, nil); err != nil {
		t.Fatal(err)
	}

	fs.SetFull(true)
	for i := range 3 {
		_, err := client.UploadBuffer(ctx, "full", "new", big, nil)
		wantCode(t, err, http.StatusServiceUnavailable, "ServerBusy")
		if i == 0 {
			// Small blobs live in the metadata's log, whose space is
			// allocated ahead: they still go in.
			if _, err := client.UploadBuffer(ctx, "full", "small", []byte("tiny"), nil); err != nil {
				t.Errorf("small upload on a full disk: %v", err)
			}
		}
	}
	if _, err := client.DeleteBlob(ctx, "full", "old", nil); err != nil {
		t.Fatalf("delete on a full disk: %v", err)
	}
	if n := countDataFiles(t, dir); n != 0 {
		t.Errorf("%d data files left after deleting the only large blob", n)
	}

	fs.SetFull(false)
	if _, err := client.UploadBuffer(ctx, "full", "new", big, nil); err != nil {
		t.Fatalf("upload once there is room again: %v", err)
	}
	if got := download(t, ctx, client.ServiceClient().NewContainerClient("full").NewBlobClient("new"), nil); !bytes.Equal(got, big) {
		t.Errorf("blob written after the disk had room again reads back %d bytes, want %d", len(got), len(big))
	}
	_, err := client.DeleteBlob(ctx, "full", "gone", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Errorf("delete of a missing blob after recovering: %v, want 404", err)
	}
}

func countDataFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(dir, "data"), func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFilesArePrivate: blob data, the metadata's log and their folders are
// the server user's only, also in a folder an earlier version made 0755.
func TestFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "blob")
	if err := os.MkdirAll(filepath.Join(dir, "data", "00"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, client := serveOn(t, dir, nil)
	ctx := context.Background()
	if _, err := client.CreateContainer(ctx, "private", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UploadBuffer(ctx, "private", "b", randBytes(300_000, 1), nil); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 { // a data file, the bbolt file, the log and its spare
		t.Errorf("only %d files under %s", files, dir)
	}
}
