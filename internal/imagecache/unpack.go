package imagecache

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// unpackFile unpacks a root filesystem tar into dir (which must not exist).
func unpackFile(tarPath, dir string) error {
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return Unpack(f, dir)
}

// Unpack extracts a root filesystem tar into dir as the image's owner
// would see it: modes, owners (when running as root), symlinks, hard links
// and times are kept; device nodes are skipped (the runtime provides /dev).
// No entry may land outside dir, whether by "..", an absolute name, or a
// path through a symlink the archive made earlier.
func Unpack(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := os.Geteuid() == 0
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirTimes []dirTime // set last: writing into a folder changes its mtime
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		rel := path.Clean("/" + h.Name)[1:]
		if rel == "" {
			continue
		}
		target := filepath.Join(dir, rel)
		if err := noSymlinkParents(dir, rel); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(target, fileMode(h.Mode)); err != nil {
				return err
			}
			dirTimes = append(dirTimes, dirTime{target, h.ModTime})
		case tar.TypeReg:
			if err := ensureParent(target); err != nil {
				return err
			}
			os.Remove(target)
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Chmod(target, fileMode(h.Mode)); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := ensureParent(target); err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src := path.Clean("/" + h.Linkname)[1:]
			if err := noSymlinkParents(dir, src); err != nil {
				return fmt.Errorf("%s: link target: %w", h.Name, err)
			}
			if err := ensureParent(target); err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Link(filepath.Join(dir, src), target); err != nil {
				return err
			}
		default:
			continue // devices, fifos: not needed in an image's root
		}
		if root {
			if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
				return err
			}
		}
		if h.Typeflag != tar.TypeDir {
			ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
			unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	for i := len(dirTimes) - 1; i >= 0; i-- {
		os.Chtimes(dirTimes[i].path, dirTimes[i].t, dirTimes[i].t)
	}
	return nil
}

// fileMode keeps setuid, setgid and sticky bits, which os.Chmod takes as
// FileMode flags rather than raw bits.
func fileMode(m int64) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode
}

func ensureParent(target string) error { return os.MkdirAll(filepath.Dir(target), 0o755) }

var errThroughSymlink = errors.New("the path goes through a symbolic link")

// noSymlinkParents refuses rel when any folder on its way inside dir is a
// symlink: following it could write outside the root.
func noSymlinkParents(dir, rel string) error {
	parts := strings.Split(rel, "/")
	p := dir
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return errThroughSymlink
		}
	}
	return nil
}
