// Package pkgarchive is the format of role packages: a gzip-compressed tar of
// a folder. Pack is deterministic (same folder, same bytes, same digest), so
// deploying an unchanged folder uploads nothing new; Unpack refuses anything
// that would write outside its destination.
package pkgarchive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrUnsafe is returned by Unpack for entries that escape the destination
// or are not regular files, folders or links.
var ErrUnsafe = errors.New("pkgarchive: unsafe entry")

// ErrTooLarge is returned by Unpack when the content exceeds its limit.
var ErrTooLarge = errors.New("pkgarchive: package too large")

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
	for _, p := range paths {
		if err := addEntry(tw, dir, p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	return nil
}

func addEntry(tw *tar.Writer, dir, p string) error {
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
		if !inside(path.Dir(name), filepath.ToSlash(target)) {
			return fmt.Errorf("pkgarchive: %s links to %s, outside the package", name, target)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	default:
		return fmt.Errorf("pkgarchive: %s is not a file, folder or link", name)
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

// inside reports whether target, relative to the folder base (both slash
// paths relative to the package root), stays inside the package.
func inside(base, target string) bool {
	if path.IsAbs(target) {
		return false
	}
	clean := path.Clean(path.Join(base, target))
	return clean != ".." && !strings.HasPrefix(clean, "../")
}

// Unpack extracts a package into dir (created if needed), writing at most
// maxBytes of file content.
func Unpack(r io.Reader, dir string, maxBytes int64) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("pkgarchive: not a gzip'd tar: %w", err)
	}
	defer gz.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	tr := tar.NewReader(gz)
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pkgarchive: read: %w", err)
		}
		name := path.Clean(strings.TrimSuffix(hdr.Name, "/"))
		if name == "." {
			continue
		}
		if !inside(".", name) {
			return fmt.Errorf("%w: %s", ErrUnsafe, hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return fmt.Errorf("pkgarchive: %w", err)
			}
		case tar.TypeReg:
			total += hdr.Size
			if total > maxBytes {
				return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
			}
			if err := writeFile(target, tr, mode, hdr.Size); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if !inside(path.Dir(name), hdr.Linkname) {
				return fmt.Errorf("%w: %s links outside the package", ErrUnsafe, hdr.Name)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("pkgarchive: %w", err)
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return fmt.Errorf("pkgarchive: %w", err)
			}
		default:
			return fmt.Errorf("%w: %s has type %q", ErrUnsafe, hdr.Name, hdr.Typeflag)
		}
	}
}

func writeFile(target string, r io.Reader, mode fs.FileMode, size int64) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	// O_EXCL: a second entry of the same name, or a link planted earlier,
	// must not be written through.
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("pkgarchive: %w", err)
	}
	_, err = io.CopyN(f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pkgarchive: write %s: %w", target, err)
	}
	return nil
}
