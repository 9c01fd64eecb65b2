package blob

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

const childDirEnv = "WEFT_BLOB_CRASH_DIR"

// TestCrashChild is the process TestDurability kills: it writes blobs and
// prints an acknowledgement after each answer. It does nothing when run
// on its own.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("runs only as TestDurability's child")
	}
	svc, err := Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ep := storagetest.Serve(t, storage.Blob, svc)
	client, err := azblob.NewClientFromConnectionString(storagetest.ConnectionString(ep, "", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := client.CreateContainer(ctx, "crash", nil); err != nil {
		t.Fatal(err)
	}
	cc := client.ServiceClient().NewContainerClient("crash")
	pb := cc.NewPageBlobClient("disk")
	if _, err := pb.Create(ctx, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ack := func(format string, args ...any) {
		mu.Lock()
		fmt.Printf(format+"\n", args...)
		mu.Unlock()
	}
	// A blob whose body stops halfway: it must never appear.
	go func() {
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write(make([]byte, 2<<20))
			ack("HALF")
			select {}
		}()
		_, _ = cc.NewBlockBlobClient("half").Upload(ctx, streaming.NopCloser(readSeekerOf(pr, 4<<20)), nil)
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				seed := uint64(w*1_000_000 + i)
				size := []int{100, 5000, 70_000, 300_000}[i%4]
				name := fmt.Sprintf("b-%d-%d", w, i)
				if _, err := client.UploadBuffer(ctx, "crash", name, randBytes(size, seed), nil); err != nil {
					ack("ERR %v", err)
					return
				}
				ack("ACK %s %d %d", name, size, seed)
				off := int64((w*64 + i%64) * 4096)
				if _, err := pb.UploadPages(ctx, streaming.NopCloser(bytes.NewReader(randBytes(4096, seed))), blob.HTTPRange{Offset: off, Count: 4096}, nil); err != nil {
					ack("ERR %v", err)
					return
				}
				ack("PAGE %d %d", off, seed)
			}
		})
	}
	wg.Wait()
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

func TestDurability(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type acked struct {
		size int
		seed uint64
	}
	blobs := map[string]acked{}
	pages := map[int64]uint64{}
	half := false
	sc := bufio.NewScanner(out)
	for sc.Scan() && (len(blobs) < 60 || !half) {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 4 && f[0] == "ACK":
			size, _ := strconv.Atoi(f[2])
			seed, _ := strconv.ParseUint(f[3], 10, 64)
			blobs[f[1]] = acked{size, seed}
		case len(f) == 3 && f[0] == "PAGE":
			off, _ := strconv.ParseInt(f[1], 10, 64)
			seed, _ := strconv.ParseUint(f[2], 10, 64)
			pages[off] = seed
		case len(f) > 0 && f[0] == "HALF":
			half = true
		case len(f) > 0 && f[0] == "ERR":
			t.Fatalf("child: %s", sc.Text())
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if len(blobs) < 60 || !half {
		t.Fatalf("child stopped early: %d blobs, half=%v", len(blobs), half)
	}

	svc, err := Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ep := storagetest.Serve(t, storage.Blob, svc)
	client, err := azblob.NewClientFromConnectionString(storagetest.ConnectionString(ep, "", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cc := client.ServiceClient().NewContainerClient("crash")
	for name, a := range blobs {
		got := download(t, ctx, cc.NewBlobClient(name), nil)
		if !bytes.Equal(got, randBytes(a.size, a.seed)) {
			t.Errorf("%s: %d bytes read back differ from the acknowledged %d", name, len(got), a.size)
		}
	}
	disk := download(t, ctx, cc.NewBlobClient("disk"), nil)
	for off, seed := range pages {
		// Each offset is written once in a run this short.
		if !bytes.Equal(disk[off:off+4096], randBytes(4096, seed)) {
			t.Errorf("page at %d lost", off)
		}
	}
	_, err = cc.NewBlockBlobClient("half").GetProperties(ctx, nil)
	wantCode(t, err, 404, "BlobNotFound")
	t.Logf("%d blobs and %d page writes acknowledged before the kill, all read back", len(blobs), len(pages))
}
