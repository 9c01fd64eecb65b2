// Package pkgstore keeps role packages content-addressed on the controller's
// disk: a package is stored once under the SHA-256 of its bytes, written to a
// temporary file, fsynced and renamed, so a crash never leaves a torn package.
package pkgstore

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftcloud/weft/internal/atomicfile"
)

// MaxSize is the largest package accepted.
const MaxSize = 1 << 30

// ErrNotFound is returned for a digest the store does not have.
var ErrNotFound = errors.New("pkgstore: package not found")

// ErrTooLarge is returned when a package exceeds MaxSize.
var ErrTooLarge = errors.New("pkgstore: package larger than 1 GiB")

// ErrBadDigest is returned for a digest that is not "sha256:<64 hex>".
var ErrBadDigest = errors.New("pkgstore: digest must be sha256:<64 hex digits>")

// Store is a directory of packages.
type Store struct{ dir string }

// Open creates dir if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pkgstore: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Put stores what r yields and returns its digest and size. check, when
// set, reads the received bytes first: its error, returned as is, refuses
// them and nothing is stored.
func (s *Store) Put(r io.Reader, check func(io.Reader) error) (digest string, size int64, err error) {
	tmp, err := os.CreateTemp(s.dir, ".upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("pkgstore: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, MaxSize+1))
	if err != nil {
		return "", 0, fmt.Errorf("pkgstore: receive package: %w", err)
	}
	if size > MaxSize {
		return "", 0, ErrTooLarge
	}
	if check != nil {
		if _, err = tmp.Seek(0, io.SeekStart); err != nil {
			return "", 0, fmt.Errorf("pkgstore: %w", err)
		}
		if err = check(bufio.NewReader(tmp)); err != nil {
			return "", 0, err
		}
	}
	if err = tmp.Sync(); err != nil {
		return "", 0, fmt.Errorf("pkgstore: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return "", 0, fmt.Errorf("pkgstore: %w", err)
	}
	digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if err = os.Rename(tmp.Name(), s.path(digest)); err != nil {
		return "", 0, fmt.Errorf("pkgstore: %w", err)
	}
	if err = atomicfile.SyncDir(s.dir); err != nil {
		return "", 0, err
	}
	return digest, size, nil
}

// Open returns the package's bytes.
func (s *Store) Open(digest string) (io.ReadCloser, int64, error) {
	if !ValidDigest(digest) {
		return nil, 0, ErrBadDigest
	}
	f, err := os.Open(s.path(digest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("pkgstore: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("pkgstore: %w", err)
	}
	return f, fi.Size(), nil
}

// Has reports whether the store holds digest.
func (s *Store) Has(digest string) bool {
	if !ValidDigest(digest) {
		return false
	}
	_, err := os.Stat(s.path(digest))
	return err == nil
}

// ValidDigest reports whether d is "sha256:" followed by 64 lowercase hex digits.
func ValidDigest(d string) bool {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

func (s *Store) path(digest string) string {
	return filepath.Join(s.dir, strings.TrimPrefix(digest, "sha256:"))
}
