package vmimage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// kernelMetaPackage depends on the current kernel package.
const kernelMetaPackage = "linux-image-amd64"

// requireTools fails with the first of the tools that is not in PATH.
func requireTools(tools ...string) error {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("vmimage: %s is needed and not installed: %w", t, err)
		}
	}
	return nil
}

// run runs a command and returns its stdout; its stderr goes into the error.
func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// aptArgs are the options every apt-cache and apt-get run gets: apt's
// package cache kept in cacheDir. Where the system's is switched off (the
// Debian container images' docker-clean does that), each apt run would
// otherwise parse the package lists anew, about a CPU-second a run, three
// runs an image build. apt checks the cache against the lists and writes
// it by renaming, so concurrent builds and apt-get update are safe.
// (apt-get download runs in a folder of its own: the path is absolute.)
func aptArgs(cacheDir string, args ...string) []string {
	cache, err := filepath.Abs(filepath.Join(cacheDir, "apt-pkgcache.bin"))
	if err != nil {
		return args // no working directory: apt without its cache still works
	}
	return append([]string{"-o", "Dir::Cache::pkgcache=" + cache}, args...)
}

// fetchKernelDeb returns the cached or downloaded .deb of the kernel that
// linux-image-amd64 currently depends on. Without apt it falls back to the
// newest kernel .deb in the cache.
func fetchKernelDeb(ctx context.Context, cacheDir string, r reporter) (string, error) {
	pkg, err := kernelPackage(ctx, cacheDir)
	if err != nil {
		cached := cachedDebs(cacheDir, "linux-image-*-amd64")
		if len(cached) == 0 {
			return "", err
		}
		r.log.Warn("apt unavailable, using a cached kernel", "deb", cached[len(cached)-1], "err", err)
		r.say("apt cannot name the newest kernel: using the cached %s", filepath.Base(cached[len(cached)-1]))
		return cached[len(cached)-1], nil
	}
	return fetchDeb(ctx, cacheDir, pkg, r)
}

// kernelPackage resolves linux-image-amd64 to the real kernel package,
// e.g. linux-image-6.1.0-48-amd64.
func kernelPackage(ctx context.Context, cacheDir string) (string, error) {
	out, err := run(ctx, "", "apt-cache", aptArgs(cacheDir, "depends", kernelMetaPackage)...)
	if err != nil {
		return "", fmt.Errorf("vmimage: resolve %s: %w", kernelMetaPackage, err)
	}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "Depends: ")
		if !ok {
			continue
		}
		dep = strings.Trim(dep, "<>")
		if strings.HasPrefix(dep, "linux-image-") && dep != kernelMetaPackage && !strings.Contains(dep, "-unsigned") {
			return dep, nil
		}
	}
	return "", fmt.Errorf("vmimage: %s depends on no kernel package (apt-cache depends said %q)", kernelMetaPackage, out)
}

// fetchDeb returns the path of pkg's .deb in cacheDir, downloading the
// candidate version with apt-get when it is not cached. When apt does not
// know pkg (no apt, or lists not updated), a cached .deb of any version does.
func fetchDeb(ctx context.Context, cacheDir, pkg string, r reporter) (string, error) {
	version, verr := candidateVersion(ctx, cacheDir, pkg)
	if verr != nil {
		if cached := cachedDebs(cacheDir, pkg); len(cached) > 0 {
			r.log.Warn("apt unavailable, using a cached package", "deb", cached[len(cached)-1], "err", verr)
			r.say("apt cannot name the newest %s: using the cached %s", pkg, filepath.Base(cached[len(cached)-1]))
			return cached[len(cached)-1], nil
		}
		return "", verr
	}
	for _, p := range cachedDebs(cacheDir, pkg) {
		if debVersion(p) == version {
			r.log.Debug("package cached", "deb", p)
			r.say("%s %s: cached", pkg, version)
			return p, nil
		}
	}
	if err := requireTools("apt-get"); err != nil {
		return "", err
	}
	r.log.Info("downloading package", "package", pkg, "version", version)
	r.say("downloading %s %s with apt-get", pkg, version)
	tmp, err := os.MkdirTemp(cacheDir, ".download-")
	if err != nil {
		return "", fmt.Errorf("vmimage: %w", err)
	}
	defer os.RemoveAll(tmp)
	// Root runs apt-get download unsandboxed anyway; say so, to silence the warning.
	args := aptArgs(cacheDir, "download", "-q")
	if os.Geteuid() == 0 {
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	if _, err := run(ctx, tmp, "apt-get", append(args, pkg+"="+version)...); err != nil {
		return "", fmt.Errorf("vmimage: download %s: %w", pkg, err)
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("vmimage: download %s: apt-get left %d .deb files", pkg, len(got))
	}
	dst := filepath.Join(cacheDir, filepath.Base(got[0]))
	if err := os.Rename(got[0], dst); err != nil {
		return "", fmt.Errorf("vmimage: %w", err)
	}
	return dst, nil
}

// candidateVersion is the version apt would install of pkg.
func candidateVersion(ctx context.Context, cacheDir, pkg string) (string, error) {
	out, err := run(ctx, "", "apt-cache", aptArgs(cacheDir, "show", "--no-all-versions", pkg)...)
	if err != nil {
		return "", fmt.Errorf("vmimage: find package %s: %w", pkg, err)
	}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Version: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("vmimage: apt-cache show %s has no version", pkg)
}

// cachedDebs lists the amd64 .debs of pkg (a glob pattern) in dir, sorted by name.
func cachedDebs(dir, pkg string) []string {
	got, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_amd64.deb"))
	var out []string
	for _, p := range got {
		// "linux-image-*-amd64" must not match the meta package linux-image-amd64.
		if !strings.HasPrefix(filepath.Base(p), kernelMetaPackage+"_") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// debVersion is the version in a .deb's file name as apt-get download
// writes it (the epoch's colon escaped as %3a).
func debVersion(path string) string {
	parts := strings.Split(strings.TrimSuffix(filepath.Base(path), ".deb"), "_")
	if len(parts) != 3 {
		return ""
	}
	return strings.ReplaceAll(strings.ReplaceAll(parts[1], "%3a", ":"), "%3A", ":")
}

// extractBusybox unpacks busybox-static's /bin/busybox to a file in workDir.
func extractBusybox(ctx context.Context, deb, workDir string) (string, error) {
	tmp, err := os.MkdirTemp(workDir, ".busybox-")
	if err != nil {
		return "", fmt.Errorf("vmimage: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, "", "dpkg-deb", "-x", deb, tmp); err != nil {
		return "", fmt.Errorf("vmimage: unpack busybox: %w", err)
	}
	dst := filepath.Join(workDir, "busybox")
	if err := copyFile(filepath.Join(tmp, "bin", "busybox"), dst, 0o755); err != nil {
		return "", err
	}
	if err := checkStatic(dst); err != nil {
		return "", fmt.Errorf("vmimage: busybox from %s: %w", filepath.Base(deb), err)
	}
	return dst, nil
}

// copyFile copies src to dst (replacing it) with mode perm.
func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return fmt.Errorf("vmimage: %w", err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("vmimage: copy %s: %w", src, err)
	}
	return nil
}

// errNotELF marks a file that is not an ELF executable.
var errNotELF = errors.New("not an x86-64 ELF executable")
