package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftcloud/weft/internal/pkgarchive"
)

// maxUnpacked bounds what one package may expand to on a node.
const maxUnpacked = 4 << 30

// unpack puts a package into dir, downloading it into the node's cache first
// when this node has not seen it.
func (a *Agent) unpack(ctx context.Context, digest, dir string) error {
	path, err := a.cachedPackage(ctx, digest)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("package %s: %w", digest, err)
	}
	defer f.Close()
	if err := pkgarchive.Unpack(f, dir, maxUnpacked); err != nil {
		return fmt.Errorf("package %s: %w", digest, err)
	}
	return nil
}

func (a *Agent) cachedPackage(ctx context.Context, digest string) (string, error) {
	name := strings.TrimPrefix(digest, "sha256:")
	if name == digest || strings.ContainsAny(name, "/.") {
		return "", fmt.Errorf("package %q: not a sha256 digest", digest)
	}
	path := filepath.Join(a.cfg.DataDir, "packages", name+".tar.gz")
	a.pkgMu.Lock()
	defer a.pkgMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	rc, err := a.ctl.Package(ctx, digest)
	if err != nil {
		return "", fmt.Errorf("download package %s: %w", digest, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, rc); err != nil {
		tmp.Close()
		return "", fmt.Errorf("download package %s: %w", digest, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}
