package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/untar"
)

// unpack puts a package into dir, downloading it into the node's cache first
// when this node has not seen it. What it writes is charged to the node's
// budget until removeRoot or removeInstanceDir removes dir.
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
	n, err := pkgarchive.Unpack(f, dir, a.cfg.MaxUnpackBytes, a.unpacked)
	a.rootsMu.Lock()
	a.roots[dir] += n
	a.rootsMu.Unlock()
	if err != nil {
		return fmt.Errorf("package %s: %w", digest, err)
	}
	return nil
}

// removeRoot removes an instance's unpacked package and gives back its
// share of the node's budget.
func (a *Agent) removeRoot(dir string) {
	os.RemoveAll(dir)
	a.rootsMu.Lock()
	n := a.roots[dir]
	delete(a.roots, dir)
	a.rootsMu.Unlock()
	a.unpacked.Release(n)
}

// removeInstanceDir removes an instance's folder, its package included.
func (a *Agent) removeInstanceDir(dir string) {
	a.removeRoot(filepath.Join(dir, "root"))
	a.removeExtensionRoots(dir)
	os.RemoveAll(dir)
}

// removeExtensionRoots removes the packages of an instance's extensions
// (extensions.go) and gives back their share of the budget.
func (a *Agent) removeExtensionRoots(dir string) {
	roots, _ := filepath.Glob(filepath.Join(dir, extensionsDir, "*"))
	for _, root := range roots {
		if fi, err := os.Lstat(root); err == nil && fi.IsDir() {
			a.removeRoot(root)
		}
	}
}

// holdRoots charges the budget with the packages an earlier agent left
// unpacked in instance folders.
func (a *Agent) holdRoots() {
	roots, _ := filepath.Glob(filepath.Join(a.cfg.DataDir, "instances", "*", "root"))
	exts, _ := filepath.Glob(filepath.Join(a.cfg.DataDir, "instances", "*", extensionsDir, "*"))
	for _, dir := range exts {
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			roots = append(roots, dir)
		}
	}
	for _, root := range roots {
		n, err := untar.Usage(root)
		if err != nil {
			a.log.Warn("measure an instance's package", "dir", root, "err", err)
		}
		a.roots[root] = n
		a.unpacked.Hold(n)
	}
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
