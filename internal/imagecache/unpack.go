package imagecache

import (
	"archive/tar"
	"io"
	"os"

	"github.com/weftcloud/weft/internal/untar"
)

// unpackFile unpacks a root filesystem tar into dir (which must not exist).
func unpackFile(tarPath, dir string, opt untar.Options) (int64, error) {
	f, err := os.Open(tarPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return untar.Extract(f, dir, opt)
}

// Options returns how a root filesystem is unpacked: modes, owners (when
// running as root), symlinks, hard links and times are kept; device nodes
// and fifos are skipped (the runtime provides /dev). maxBytes and budget
// bound what it may write (see untar.Options).
func Options(maxBytes int64, budget *untar.Budget) untar.Options {
	return untar.Options{
		Entry:    rootfsEntry,
		Owners:   os.Geteuid() == 0,
		Times:    true,
		MaxBytes: maxBytes,
		Budget:   budget,
	}
}

func rootfsEntry(h *tar.Header) error {
	switch h.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
		return nil
	}
	return untar.ErrSkip
}

// Unpack extracts a root filesystem tar into dir as the image's owner would
// see it (see Options), with no limit on its size. No entry lands outside
// dir or is written through a symbolic link (untar.Extract).
func Unpack(r io.Reader, dir string) error {
	_, err := untar.Extract(r, dir, Options(0, nil))
	return err
}
