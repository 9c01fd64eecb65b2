// Command storagebench measures the storage service through the official Azure
// SDK for Go, side by side with Azurite (the Azure storage emulator) when it is
// installed, and prints a Markdown table. scripts/bench-storage.sh runs it.
//
//	go run ./internal/storage/storagebench -azurite PATH/TO/node_modules/.bin/azurite
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/pageblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// target is a storage endpoint set under test.
type target struct {
	name           string
	blob, q, table string // service URLs ending in /devstoreaccount1
}

func (t target) conn() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;QueueEndpoint=%s;TableEndpoint=%s;",
		storage.DevAccount, storage.DevKey, t.blob, t.q, t.table)
}

// figure is one measured workload.
type figure struct {
	name    string
	unit    string // "MB/s" or "ops/s"
	workers int
	setup   func(ctx context.Context, t target) (op func(ctx context.Context, worker, i int) (int, error), err error)
}

func main() {
	azurite := flag.String("azurite", "", "path of the azurite executable (npm package azurite); empty: Weft only")
	dur := flag.Duration("duration", 4*time.Second, "how long each figure runs")
	only := flag.String("only", "", "measure only the figures whose name contains this")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "storagebench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	srv, err := storageserver.Start(storageserver.Config{Data: filepath.Join(dir, "weft"), Host: "127.0.0.1"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	targets := []target{{name: "Weft", blob: srv.BlobEndpoint(), q: srv.QueueEndpoint(), table: srv.TableEndpoint()}}
	if *azurite != "" {
		t, stop, err := startAzurite(*azurite, filepath.Join(dir, "azurite"))
		if err != nil {
			log.Printf("Azurite not measured: %v", err)
		} else {
			defer stop()
			targets = append(targets, t)
		}
	}

	var chosen []figure
	for _, f := range figures() {
		if strings.Contains(f.name, *only) {
			chosen = append(chosen, f)
		}
	}
	results := map[string][]float64{}
	for _, f := range chosen {
		for _, t := range targets {
			v, err := measure(f, t, *dur)
			if err != nil {
				log.Printf("%s on %s: %v", f.name, t.name, err)
				v = -1
			}
			results[f.name] = append(results[f.name], v)
			log.Printf("%-40s %-8s %10.0f %s", f.name, t.name, v, f.unit)
		}
	}
	fmt.Printf("\n| figure | %s |", targets[0].name)
	if len(targets) > 1 {
		fmt.Printf(" %s | Weft / Azurite |", targets[1].name)
	}
	fmt.Printf("\n|---|---|%s\n", strings.Repeat("---|", 2*(len(targets)-1)))
	for _, f := range chosen {
		r := results[f.name]
		clients := "clients"
		if f.workers == 1 {
			clients = "client"
		}
		fmt.Printf("| %s (%d %s) | %s |", f.name, f.workers, clients, show(r[0], f.unit))
		if len(r) > 1 {
			ratio := "-"
			if r[0] > 0 && r[1] > 0 {
				ratio = fmt.Sprintf("%.1fx", r[0]/r[1])
			}
			fmt.Printf(" %s | %s |", show(r[1], f.unit), ratio)
		}
		fmt.Println()
	}
	if dd, err := ddThroughput(dir); err == nil && *only == "" {
		fmt.Printf("\n`dd if=/dev/zero bs=1M count=1024 conv=fsync` on the same disk: %s\n", dd)
	}
}

func show(v float64, unit string) string {
	if v < 0 {
		return "failed"
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// measure runs f's workers for d and returns MB/s (by bytes) or ops/s.
func measure(f figure, t target, d time.Duration) (float64, error) {
	ctx := context.Background()
	op, err := f.setup(ctx, t)
	if err != nil {
		return 0, err
	}
	var ops, bytesDone atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < f.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				n, err := op(ctx, w, i)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				ops.Add(1)
				bytesDone.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err, _ := firstErr.Load().(error); err != nil && ops.Load() == 0 {
		return 0, err
	}
	if f.unit == "MB/s" {
		return float64(bytesDone.Load()) / 1e6 / elapsed, nil
	}
	return float64(ops.Load()) / elapsed, nil
}

var run atomic.Int64 // keeps container, queue and table names apart between figures

func blobFigure(name string, workers, size int, download bool) figure {
	return figure{name: name, unit: "MB/s", workers: workers, setup: func(ctx context.Context, t target) (func(context.Context, int, int) (int, error), error) {
		c, err := azblob.NewClientFromConnectionString(t.conn(), nil)
		if err != nil {
			return nil, err
		}
		container := fmt.Sprintf("bench%d", run.Add(1))
		if _, err := c.CreateContainer(ctx, container, nil); err != nil {
			return nil, err
		}
		data := make([]byte, size)
		rand.Read(data)
		if download {
			if _, err := c.UploadBuffer(ctx, container, "src", data, nil); err != nil {
				return nil, err
			}
			return func(ctx context.Context, w, i int) (int, error) {
				resp, err := c.DownloadStream(ctx, container, "src", nil)
				if err != nil {
					return 0, err
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return int(n), err
			}, nil
		}
		return func(ctx context.Context, w, i int) (int, error) {
			_, err := c.UploadBuffer(ctx, container, fmt.Sprintf("w%d-%d", w, i), data, nil)
			return size, err
		}, nil
	}}
}

func figures() []figure {
	return []figure{
		blobFigure("1 MiB block blob upload", 8, 1<<20, false),
		blobFigure("1 MiB blob download", 8, 1<<20, true),
		blobFigure("64 MiB block blob upload", 1, 64<<20, false),
		blobFigure("64 MiB blob download", 1, 64<<20, true),
		{name: "1 KiB blob put", unit: "ops/s", workers: 16, setup: func(ctx context.Context, t target) (func(context.Context, int, int) (int, error), error) {
			f := blobFigure("", 0, 1<<10, false)
			return f.setup(ctx, t)
		}},
		{name: "1 KiB blob get", unit: "ops/s", workers: 16, setup: func(ctx context.Context, t target) (func(context.Context, int, int) (int, error), error) {
			f := blobFigure("", 0, 1<<10, true)
			return f.setup(ctx, t)
		}},
		{name: "random 64 KiB page writes", unit: "ops/s", workers: 8, setup: pageWrites},
		{name: "queue put+get+delete", unit: "ops/s", workers: 8, setup: queueRoundTrips},
		{name: "table inserts", unit: "ops/s", workers: 8, setup: tableInserts},
		{name: "table point queries", unit: "ops/s", workers: 8, setup: tablePointQueries},
	}
}

func pageWrites(ctx context.Context, t target) (func(context.Context, int, int) (int, error), error) {
	c, err := azblob.NewClientFromConnectionString(t.conn(), nil)
	if err != nil {
		return nil, err
	}
	container := fmt.Sprintf("bench%d", run.Add(1))
	if _, err := c.CreateContainer(ctx, container, nil); err != nil {
		return nil, err
	}
	const size = 1 << 30
	pb := c.ServiceClient().NewContainerClient(container).NewPageBlobClient("disk")
	if _, err := pb.Create(ctx, size, nil); err != nil {
		return nil, err
	}
	page := make([]byte, 64<<10)
	rand.Read(page)
	return func(ctx context.Context, w, i int) (int, error) {
		n, _ := rand.Int(rand.Reader, big.NewInt(size/int64(len(page))))
		off := n.Int64() * int64(len(page))
		_, err := pb.UploadPages(ctx, nopCloser{bytes.NewReader(page)}, blob.HTTPRange{Offset: off, Count: int64(len(page))}, &pageblob.UploadPagesOptions{})
		return len(page), err
	}, nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func queueRoundTrips(ctx context.Context, t target) (func(context.Context, int, int) (int, error), error) {
	c, err := azqueue.NewServiceClientFromConnectionString(t.conn(), nil)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("bench%d", run.Add(1))
	if _, err := c.CreateQueue(ctx, name, nil); err != nil {
		return nil, err
	}
	q := c.NewQueueClient(name)
	return func(ctx context.Context, w, i int) (int, error) {
		if _, err := q.EnqueueMessage(ctx, "payload", nil); err != nil {
			return 0, err
		}
		got, err := q.DequeueMessages(ctx, nil)
		if err != nil {
			return 0, err
		}
		for _, m := range got.Messages {
			if _, err := q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}, nil
}

func newTable(ctx context.Context, t target) (*aztables.Client, error) {
	svc, err := aztables.NewServiceClientFromConnectionString(t.conn(), nil)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("bench%d", run.Add(1))
	if _, err := svc.CreateTable(ctx, name, nil); err != nil {
		return nil, err
	}
	return svc.NewClient(name), nil
}

func entity(pk, rk string) []byte {
	return []byte(fmt.Sprintf(`{"PartitionKey":%q,"RowKey":%q,"Name":"bench","Count":42}`, pk, rk))
}

func tableInserts(ctx context.Context, t target) (func(context.Context, int, int) (int, error), error) {
	tc, err := newTable(ctx, t)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, w, i int) (int, error) {
		_, err := tc.AddEntity(ctx, entity(fmt.Sprintf("p%d", w), fmt.Sprintf("r%d", i)), nil)
		return 0, err
	}, nil
}

func tablePointQueries(ctx context.Context, t target) (func(context.Context, int, int) (int, error), error) {
	tc, err := newTable(ctx, t)
	if err != nil {
		return nil, err
	}
	for i := 0; i < 100; i++ {
		if _, err := tc.AddEntity(ctx, entity("p", fmt.Sprintf("r%d", i)), nil); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context, w, i int) (int, error) {
		_, err := tc.GetEntity(ctx, "p", fmt.Sprintf("r%d", i%100), nil)
		return 0, err
	}, nil
}

// startAzurite runs the emulator on free ports with its data in dir.
func startAzurite(bin, dir string) (target, func(), error) {
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return target{}, nil, err
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	cmd := exec.Command(bin, "--silent", "--location", dir, "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
		"--blobPort", fmt.Sprint(ports[0]), "--queuePort", fmt.Sprint(ports[1]), "--tablePort", fmt.Sprint(ports[2]),
		"--skipApiVersionCheck", "--loose", "--disableTelemetry") // no traffic leaves this machine
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return target{}, nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for _, p := range ports {
		up := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				c.Close()
				up = true
				break
			}
		}
		if !up {
			stop()
			return target{}, nil, fmt.Errorf("azurite did not listen on %d", p)
		}
	}
	u := func(p int) string { return fmt.Sprintf("http://127.0.0.1:%d/%s", p, storage.DevAccount) }
	return target{name: "Azurite", blob: u(ports[0]), q: u(ports[1]), table: u(ports[2])}, stop, nil
}

// ddThroughput is what dd writes with one fsync at the end: the disk's floor.
func ddThroughput(dir string) (string, error) {
	out, err := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "dd.bin"), "bs=1M", "count=1024", "conv=fsync").CombinedOutput()
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`([0-9.,]+ [MG]B/s)`).FindString(string(out))
	return m, nil
}
