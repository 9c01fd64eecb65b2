package drive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// headSize is the start of a disk that blank reads, and that Format
// writes last: a format cut short leaves it zeros, so the disk still
// reads as blank and is formatted again, never taken for ext4 half made.
const headSize = 64 << 10

// formatChunk is the most Format writes at a time (a Put Page's limit).
const formatChunk = 4 << 20

// Format makes an ext4 file system on disk if it is blank (as Attach
// does), without mounting it: for a disk something else mounts, a VM's
// drive, which the guest mounts. mkfs.ext4 writes a sparse file in dir
// of the disk's size, and only what it wrote is copied to the disk, the
// head last. It reports whether it formatted. A disk holding something
// else than ext4 is refused, never formatted over.
func Format(ctx context.Context, disk Disk, dir string) (bool, error) {
	blank, err := blank(ctx, disk)
	if err != nil || !blank {
		return false, err
	}
	f, err := os.CreateTemp(dir, "mkfs-*.img")
	if err != nil {
		return false, fmt.Errorf("drive: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := f.Truncate(disk.Size()); err != nil {
		return false, fmt.Errorf("drive: %w", err)
	}
	// As in Attach: the disk reads as zeros where it was never written.
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-m", "0",
		"-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", f.Name()).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("drive: mkfs.ext4: %w: %s", err, out)
	}
	head := make([]byte, min(headSize, disk.Size()))
	if _, err := f.ReadAt(head, 0); err != nil {
		return false, fmt.Errorf("drive: read the new file system: %w", err)
	}
	if err := copyData(ctx, f, disk, int64(len(head))); err != nil {
		return false, err
	}
	if err := disk.WriteAt(ctx, head, 0); err != nil {
		return false, fmt.Errorf("drive: write the superblock: %w", err)
	}
	return true, disk.Flush(ctx)
}

// copyData writes the data extents of the sparse file f from offset from
// on to the same offsets of disk.
func copyData(ctx context.Context, f *os.File, disk Disk, from int64) error {
	buf := make([]byte, formatChunk)
	size := disk.Size()
	for off := from; off < size; {
		start, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // no data after off
		}
		if err != nil {
			return fmt.Errorf("drive: find the file system's data: %w", err)
		}
		end, err := unix.Seek(int(f.Fd()), start, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("drive: find the file system's data: %w", err)
		}
		end = min(end, size)
		for start < end {
			n := int(min(end-start, int64(len(buf))))
			if _, err := f.ReadAt(buf[:n], start); err != nil && err != io.EOF {
				return fmt.Errorf("drive: read the new file system: %w", err)
			}
			if err := disk.WriteAt(ctx, buf[:n], start); err != nil {
				return fmt.Errorf("drive: write the file system: %w", err)
			}
			start += int64(n)
		}
		off = end
	}
	return nil
}
