// Package pkgarchive is the format of role packages: a gzip-compressed tar of
// a folder. Pack is deterministic (same folder, same bytes, same digest), so
// deploying an unchanged folder uploads nothing new. Pack, Check (the
// controller, at upload) and Unpack (the node) refuse the same packages:
// anything that could write, or link, outside the package's folder.
package pkgarchive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/weftcloud/weft/internal/untar"
)

// ErrUnsafe is returned by Check and Unpack for entries that escape the
// destination or are not regular files, folders or symbolic links.
var ErrUnsafe = untar.ErrUnsafe

// ErrTooLarge is returned by Check and Unpack when a package unpacks to
// more than its limit.
var ErrTooLarge = untar.ErrTooLarge

// Pack writes dir as a gzip'd tar: entries sorted, times and owners zeroed,
// permission bits kept. Symbolic links must stay inside dir.
func Pack(dir string, w io.Writer) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pkgarchive: walk %s: %w", dir, err)
	}
	sort.Strings(paths)
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	c := newChecker()
	for _, p := range paths {
		if err := addEntry(tw, c, dir, p); err != nil {
			return err
		}
	}
	if err := c.finish(); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	return nil
}

func addEntry(tw *tar.Writer, c *checker, dir, p string) error {
	rel, _ := filepath.Rel(dir, p)
	name := filepath.ToSlash(rel)
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	hdr := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	switch {
	case fi.Mode().IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	case fi.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("pkgarchive: %w", err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, filepath.ToSlash(target)
	default:
		return fmt.Errorf("pkgarchive: %s is not a file, folder or link", name)
	}
	// What a node would refuse is refused here, before an upload.
	check := *hdr
	if err := c.entry(&check); err != nil {
		return err
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("pkgarchive: %s: %w", name, err)
	}
	return nil
}

// Unpack extracts a package into dir (created if needed). The package is
// checked as Check does, and written with untar.Extract: at most maxBytes
// (content plus untar.EntryCost per entry), charged to budget (nil: not
// counted). It returns the bytes charged, also on error (see untar.Extract).
func Unpack(r io.Reader, dir string, maxBytes int64, budget *untar.Budget) (int64, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("pkgarchive: not a gzip'd tar: %w", err)
	}
	defer gz.Close()
	c := newChecker()
	n, err := untar.Extract(gz, dir, untar.Options{Entry: c.entry, MaxBytes: maxBytes, Budget: budget})
	if err != nil {
		return n, err // untar's, or the checker's, named
	}
	return n, c.finish()
}

// Check reads a whole package and refuses one Unpack would refuse: not a
// gzip'd tar, an entry that is not a file, folder or symbolic link, a name
// outside the package or given twice, a path through one of its links, a
// link that resolves (through its other links) outside the package, or
// more than maxBytes unpacked. The error names the entry.
func Check(r io.Reader, maxBytes int64) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("pkgarchive: not a gzip'd tar: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	c := newChecker()
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("pkgarchive: read: %w", err)
		}
		if err := c.entry(hdr); errors.Is(err, untar.ErrSkip) {
			continue
		} else if err != nil {
			return err
		}
		if total += untar.Cost(hdr); maxBytes > 0 && total > maxBytes {
			return fmt.Errorf("pkgarchive: %s: %w", hdr.Name, untar.TooLarge(maxBytes))
		}
	}
	// The content must be there too: a truncated archive fails here, not on a node.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return fmt.Errorf("pkgarchive: read: %w", err)
	}
	return c.finish()
}
