// Package vmdisk makes page blobs in the storage service into VM disks: a
// Disk is an nbd.Backend whose every write is a Put Page under the disk's
// lease, so a persistent VM's disk lives in storage, not on any node, and a
// node that lost the lease (fenced after the VM moved) can no longer write.
package vmdisk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/nbd"
	"github.com/weftcloud/weft/internal/storage/blobclient"
)

const page = blobclient.PageSize

// Disk is one page blob served as a block device.
type Disk struct {
	blobs           *blobclient.Client
	container, blob string
	size            int64
	lease           string

	rmw sync.Mutex // read-modify-write of partial pages, rare: the NBD server asks for 512-byte alignment
}

var _ nbd.Backend = (*Disk)(nil)

// Open returns the disk container/blob of size bytes, written under lease
// (which the caller acquired; "" for none).
func Open(blobs *blobclient.Client, container, blob string, size int64, lease string) *Disk {
	return &Disk{blobs: blobs, container: container, blob: blob, size: size, lease: lease}
}

// Client returns a client of the storage that holds the disk a node was
// given access to, authorized by its SAS, and turning to the other
// servers' storage when the disk's own cannot be reached.
func Client(d api.DiskAccess) (*blobclient.Client, error) {
	sas, err := url.ParseQuery(d.SAS)
	if err != nil {
		return nil, fmt.Errorf("vmdisk: disk %s: bad SAS: %w", d.Name, err)
	}
	return blobclient.NewSAS(d.BlobEndpoint, d.Account, sas).WithFallbacks(d.BlobEndpoints...), nil
}

// Size is the disk's size in bytes.
func (d *Disk) Size() int64 { return d.size }

// ReadAt reads len(p) bytes at off; pages never written read as zeros.
func (d *Disk) ReadAt(ctx context.Context, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	resp, err := d.blobs.Get(ctx, d.container, d.blob, fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))
	if err != nil {
		return fmt.Errorf("vmdisk: read %d@%d: %w", len(p), off, err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, p); err != nil {
		return fmt.Errorf("vmdisk: read %d@%d: %w", len(p), off, err)
	}
	return nil
}

// WriteAt writes p at off. Whole pages go straight to storage in requests of
// up to 4 MiB; a partial page at either end is read, patched and rewritten.
func (d *Disk) WriteAt(ctx context.Context, p []byte, off int64) error {
	if off%page != 0 || len(p)%page != 0 {
		return d.writePartial(ctx, p, off)
	}
	for len(p) > 0 {
		n := min(len(p), blobclient.MaxPutPages)
		if err := d.blobs.PutPages(ctx, d.container, d.blob, off, p[:n], d.lease); err != nil {
			return d.fail("write", n, off, err)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func (d *Disk) writePartial(ctx context.Context, p []byte, off int64) error {
	d.rmw.Lock()
	defer d.rmw.Unlock()
	start := off / page * page
	end := (off + int64(len(p)) + page - 1) / page * page
	buf := make([]byte, end-start)
	if err := d.ReadAt(ctx, buf, start); err != nil {
		return err
	}
	copy(buf[off-start:], p)
	return d.WriteAt(ctx, buf, start)
}

// Zero clears whole pages and writes zeros into partial ones.
func (d *Disk) Zero(ctx context.Context, off, n int64) error {
	start := (off + page - 1) / page * page
	end := (off + n) / page * page
	if start >= end {
		return d.WriteAt(ctx, make([]byte, n), off)
	}
	if start > off {
		if err := d.WriteAt(ctx, make([]byte, start-off), off); err != nil {
			return err
		}
	}
	if err := d.blobs.ClearPages(ctx, d.container, d.blob, start, end-start, d.lease); err != nil {
		return d.fail("clear", int(end-start), start, err)
	}
	if tail := off + n - end; tail > 0 {
		return d.WriteAt(ctx, make([]byte, tail), end)
	}
	return nil
}

// Flush has nothing to do: the storage service makes each Put Page durable
// before it answers, and a write is acknowledged only after that answer.
func (d *Disk) Flush(context.Context) error { return nil }

func (d *Disk) fail(op string, n int, off int64, err error) error {
	if errors.Is(err, blobclient.ErrLease) {
		return fmt.Errorf("vmdisk: %s %d@%d: %w: %v", op, n, off, nbd.ErrFenced, err)
	}
	return fmt.Errorf("vmdisk: %s %d@%d: %w", op, n, off, err)
}

// Create makes a page blob of size bytes (rounded up to whole pages) holding
// the raw disk image src (at most size bytes), skipping runs of zeros so a
// mostly empty image costs little. It fails with blobclient.ErrExists if the
// blob is there.
func Create(ctx context.Context, blobs *blobclient.Client, container, blob string, size int64, src io.Reader) error {
	size = (size + page - 1) / page * page
	if err := blobs.CreatePageBlob(ctx, container, blob, size); err != nil {
		return err
	}
	if src == nil {
		return nil
	}
	buf := make([]byte, blobclient.MaxPutPages)
	var off int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if off+int64(n) > size {
				return fmt.Errorf("vmdisk: the image is larger than the %d-byte disk", size)
			}
			chunk := buf[:(n+page-1)/page*page] // pad the last page with zeros
			clear(chunk[n:])
			if err := putNonZero(ctx, blobs, container, blob, off, chunk); err != nil {
				return err
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("vmdisk: read the image: %w", err)
		}
	}
}

// putNonZero writes chunk's runs of non-zero 64 KiB pieces.
func putNonZero(ctx context.Context, blobs *blobclient.Client, container, blob string, off int64, chunk []byte) error {
	const piece = 64 << 10
	zero := make([]byte, piece)
	runStart := -1
	flush := func(end int) error {
		if runStart < 0 {
			return nil
		}
		err := blobs.PutPages(ctx, container, blob, off+int64(runStart), chunk[runStart:end], "")
		runStart = -1
		return err
	}
	for i := 0; i < len(chunk); i += piece {
		j := min(i+piece, len(chunk))
		if bytes.Equal(chunk[i:j], zero[:j-i]) {
			if err := flush(i); err != nil {
				return err
			}
		} else if runStart < 0 {
			runStart = i
		}
	}
	return flush(len(chunk))
}
