package nbd

import (
	"context"
	"os"
)

// File is a Backend over a local file of Size bytes: a disk that lives on
// one machine, for tests and tools (the node agent serves page blobs).
type File struct {
	F   *os.File
	Len int64
}

func (d *File) Size() int64 { return d.Len }

func (d *File) ReadAt(_ context.Context, p []byte, off int64) error {
	_, err := d.F.ReadAt(p, off)
	return err
}

func (d *File) WriteAt(_ context.Context, p []byte, off int64) error {
	_, err := d.F.WriteAt(p, off)
	return err
}

func (d *File) Zero(_ context.Context, off, n int64) error {
	_, err := d.F.WriteAt(make([]byte, n), off)
	return err
}

func (d *File) Flush(context.Context) error { return d.F.Sync() }
