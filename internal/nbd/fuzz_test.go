package nbd_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"

	"github.com/weftcloud/weft/internal/nbd"
)

// memDisk is a Backend in memory that records any call outside the export.
type memDisk struct {
	mu   sync.Mutex
	data []byte
	bad  []string
}

var _ nbd.Backend = (*memDisk)(nil)

func (d *memDisk) Size() int64 { return int64(len(d.data)) }

func (d *memDisk) in(op string, off, n int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off < 0 || n < 0 || off+n > int64(len(d.data)) || n > nbd.MaxRequest {
		d.bad = append(d.bad, fmt.Sprintf("%s of %d bytes at %d", op, n, off))
		return false
	}
	return true
}

func (d *memDisk) ReadAt(_ context.Context, p []byte, off int64) error {
	if d.in("read", off, int64(len(p))) {
		d.mu.Lock()
		copy(p, d.data[off:])
		d.mu.Unlock()
	}
	return nil
}

func (d *memDisk) WriteAt(_ context.Context, p []byte, off int64) error {
	if d.in("write", off, int64(len(p))) {
		d.mu.Lock()
		copy(d.data[off:], p)
		d.mu.Unlock()
	}
	return nil
}

func (d *memDisk) Zero(_ context.Context, off, n int64) error {
	if d.in("zero", off, n) {
		d.mu.Lock()
		clear(d.data[off : off+n])
		d.mu.Unlock()
	}
	return nil
}

func (d *memDisk) Flush(context.Context) error { return nil }

// clientBytes builds what a client sends: the handshake (flags, then
// NBD_OPT_GO for export "disk") and the given requests.
func clientBytes(reqs ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 3) // fixed newstyle, no zeroes
	b = binary.BigEndian.AppendUint64(b, 0x49484156454F5054)
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint32(b, 4+4+2)
	b = binary.BigEndian.AppendUint32(b, 4)
	b = append(b, "disk"...)
	b = binary.BigEndian.AppendUint16(b, 0)
	for _, r := range reqs {
		b = append(b, r...)
	}
	return b
}

func request(typ uint16, handle, off uint64, length uint32, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0x25609513)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, handle)
	b = binary.BigEndian.AppendUint64(b, off)
	b = binary.BigEndian.AppendUint32(b, length)
	return append(b, payload...)
}

const fuzzDiskSize = 64 << 10

// FuzzServeConn feeds any bytes to the server as a client's side of a
// connection. Properties: the server never panics and returns once the
// client is gone; it never calls the disk outside the export; and it
// allocates in proportion to what was sent (a request header that claims a
// 32 MiB write does not cost 32 MiB).
func FuzzServeConn(f *testing.F) {
	payload := make([]byte, 512)
	for i := range payload {
		payload[i] = byte(i)
	}
	f.Add(clientBytes(
		request(1, 1, 0, 512, payload), request(0, 2, 0, 512, nil), request(3, 3, 0, 0, nil),
		request(4, 4, 4096, 4096, nil), request(6, 5, 8192, 512, nil), request(2, 6, 0, 0, nil)))
	f.Add(clientBytes(request(1, 1, fuzzDiskSize-256, 512, payload), request(0, 2, fuzzDiskSize, 1, nil)))
	f.Add(clientBytes(request(1, 1, 0, nbd.MaxRequest, nil)))
	f.Add(clientBytes(request(0, 1, 1<<63, 1<<31, nil), request(9, 2, 0, 0, nil)))
	// NBD_OPT_LIST, then NBD_OPT_EXPORT_NAME.
	list := binary.BigEndian.AppendUint32(nil, 3)
	list = binary.BigEndian.AppendUint64(list, 0x49484156454F5054)
	list = binary.BigEndian.AppendUint32(list, 3)
	list = binary.BigEndian.AppendUint32(list, 0)
	list = binary.BigEndian.AppendUint64(list, 0x49484156454F5054)
	list = binary.BigEndian.AppendUint32(list, 1)
	list = binary.BigEndian.AppendUint32(list, 4)
	f.Add(append(append(list, "disk"...), request(0, 1, 0, 512, nil)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		disk := &memDisk{data: make([]byte, fuzzDiskSize)}
		srv := &nbd.Server{Name: "disk", Backend: disk}
		client, server := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, client) }()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ServeConn(context.Background(), server)
		}()
		// net.Pipe's Write returns once the server has read everything.
		_, _ = client.Write(in)
		client.Close()
		<-done
		runtime.ReadMemStats(&after)
		if len(disk.bad) > 0 {
			t.Fatalf("the disk was called outside the export: %v", disk.bad)
		}
		// Each 16 bytes of input may ask for one option (64 KiB at most)
		// or one read of the whole export.
		limit := uint64(1<<20 + (len(in)/16+1)*(64<<10+2*fuzzDiskSize))
		if got := after.TotalAlloc - before.TotalAlloc; got > limit {
			t.Fatalf("serving %d bytes allocated %d bytes (limit %d)", len(in), got, limit)
		}
	})
}
