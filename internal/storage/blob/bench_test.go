package blob

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
)

// The benchmarks drive the service through the official SDK over loopback,
// as a client would; client and server share the machine's CPUs.

func benchParallel(b *testing.B, clients int, size int, op func(ctx context.Context, e *env, i int64, data []byte) error, setup func(e *env, data []byte)) {
	e := newEnv(b)
	e.container(b, "bench")
	data := randBytes(size, 1)
	if setup != nil {
		setup(e, data)
	}
	ctx := context.Background()
	var seq atomic.Int64
	b.SetBytes(int64(size))
	b.SetParallelism(max(1, clients/max(1, runtimeProcs())))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(ctx, e, seq.Add(1), data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

func upload(ctx context.Context, e *env, i int64, data []byte) error {
	_, err := e.client.ServiceClient().NewContainerClient("bench").NewBlockBlobClient(fmt.Sprintf("b%d", i)).
		Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), nil)
	return err
}

func BenchmarkUpload1MiB(b *testing.B) { benchParallel(b, 8, 1<<20, upload, nil) }

func BenchmarkPut1KiBParallel16(b *testing.B) { benchParallel(b, 16, 1<<10, upload, nil) }

func BenchmarkDownload1MiB(b *testing.B) {
	benchParallel(b, 8, 1<<20, func(ctx context.Context, e *env, i int64, data []byte) error {
		resp, err := e.client.DownloadStream(ctx, "bench", fmt.Sprintf("d%d", i%16), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}, func(e *env, data []byte) {
		for i := range 16 {
			if err := upload(context.Background(), e, 0, data); err != nil {
				b.Fatal(err)
			}
			if _, err := e.client.UploadBuffer(context.Background(), "bench", fmt.Sprintf("d%d", i), data, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPageWrite64KiB(b *testing.B) {
	const disk = 1 << 30
	benchParallel(b, 8, 64<<10, func(ctx context.Context, e *env, i int64, data []byte) error {
		off := (i * 7919 % (disk / (64 << 10))) * (64 << 10)
		_, err := e.client.ServiceClient().NewContainerClient("bench").NewPageBlobClient("disk").
			UploadPages(ctx, streaming.NopCloser(bytes.NewReader(data)), blob.HTTPRange{Offset: off, Count: int64(len(data))}, nil)
		return err
	}, func(e *env, data []byte) {
		pb := e.client.ServiceClient().NewContainerClient("bench").NewPageBlobClient("disk")
		if _, err := pb.Create(context.Background(), disk, &pageblob.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkUpload64MiB is one client sending large Put Blobs, to compare
// with what the disk itself takes (dd conv=fsync).
func BenchmarkUpload64MiB(b *testing.B) {
	e := newEnv(b)
	e.container(b, "bench")
	const size = 64 << 20
	b.SetBytes(size)
	ctx := context.Background()
	bb := e.client.ServiceClient().NewContainerClient("bench").NewBlockBlobClient("large")
	for b.Loop() {
		if _, err := bb.Upload(ctx, streaming.NopCloser(&patternReader{n: size}), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload64MiBBlocks is one client sending 64 MiB as staged blocks
// (UploadStream: 4 MiB blocks, 5 in flight) and one Put Block List, the
// path of blobs above the SDK's single-put threshold (256 MiB in azblob),
// of UploadStream and of rclone. UploadBuffer of 64 MiB is one Put Blob,
// measured by BenchmarkUpload64MiB.
func BenchmarkUpload64MiBBlocks(b *testing.B) {
	e := newEnv(b)
	e.container(b, "bench")
	const size = 64 << 20
	b.SetBytes(size)
	ctx := context.Background()
	bb := e.client.ServiceClient().NewContainerClient("bench").NewBlockBlobClient("large")
	opts := &blockblob.UploadStreamOptions{BlockSize: 4 << 20, Concurrency: 5}
	for b.Loop() {
		if _, err := bb.UploadStream(ctx, &patternReader{n: size}, opts); err != nil {
			b.Fatal(err)
		}
	}
}
