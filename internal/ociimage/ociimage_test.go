package ociimage_test

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/ociimage"
)

var cfg = api.ContainerImageConfig{Entrypoint: []string{"/bin/server"}, Env: []string{"A=1"}, WorkingDir: "/srv"}

func rootDir(t *testing.T) string {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "bin", "server"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.Symlink("server", filepath.Join(dir, "bin", "link"))
	return dir
}

// tarEntries lists a tar's names with their link targets.
func tarEntries(t *testing.T, path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(h.Name, "/")] = h.Linkname
	}
}

func TestArchiveFormats(t *testing.T) {
	img, err := ociimage.Build(rootDir(t), cfg, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	layoutDir := filepath.Join(tmp, "layout")
	if err := ociimage.WriteLayout(layoutDir, img); err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(tmp, "docker.tar")
	if err := ociimage.WriteDockerTarball(docker, "example/app:1", img); err != nil {
		t.Fatal(err)
	}
	layoutTar := filepath.Join(tmp, "layout.tar")
	tarFolder(t, layoutDir, layoutTar)

	for name, path := range map[string]string{"oci layout": layoutDir, "docker save": docker, "oci layout tar": layoutTar} {
		t.Run(name, func(t *testing.T) {
			flat, err := ociimage.FromArchive(path, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer flat.Remove()
			if diff := cmp.Diff(cfg, flat.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			entries := tarEntries(t, flat.Path)
			if _, ok := entries["bin/server"]; !ok || entries["bin/link"] != "server" {
				t.Errorf("flattened rootfs entries %v lack bin/server or the bin/link symlink", entries)
			}
			if fi, _ := os.Stat(flat.Path); fi.Size() != flat.Rootfs.Size || !strings.HasPrefix(flat.Rootfs.Digest, "sha256:") {
				t.Errorf("rootfs file %+v does not describe the %d-byte tar", flat.Rootfs, fi.Size())
			}
		})
	}
}

func TestBadArchivesAreRefused(t *testing.T) {
	tmp := t.TempDir()
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	foreign, _ := ociimage.Build(rootDir(t), cfg, other)
	foreignPath := filepath.Join(tmp, "foreign.tar")
	if err := ociimage.WriteDockerTarball(foreignPath, "x/y:1", foreign); err != nil {
		t.Fatal(err)
	}
	noEntry, _ := ociimage.Build(rootDir(t), api.ContainerImageConfig{}, runtime.GOARCH)
	noEntryPath := filepath.Join(tmp, "noentry.tar")
	ociimage.WriteDockerTarball(noEntryPath, "x/y:1", noEntry)
	good, _ := ociimage.Build(rootDir(t), cfg, runtime.GOARCH)
	goodPath := filepath.Join(tmp, "good.tar")
	ociimage.WriteDockerTarball(goodPath, "x/y:1", good)
	data, _ := os.ReadFile(goodPath)
	truncated := filepath.Join(tmp, "truncated.tar")
	os.WriteFile(truncated, data[:len(data)*2/3], 0o644)
	garbage := filepath.Join(tmp, "garbage.tar")
	os.WriteFile(garbage, []byte("this is not a tar file at all, not even close........"), 0o644)

	for _, tc := range []struct{ path, want string }{
		{foreignPath, "image for " + other},
		{noEntryPath, "no entrypoint"},
		{truncated, "not a tar archive"},
		{garbage, "not a tar archive"},
		{filepath.Join(tmp, "missing.tar"), "no such file"},
	} {
		_, err := ociimage.FromArchive(tc.path, tmp)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("FromArchive(%s) = %v, want an error containing %q", filepath.Base(tc.path), err, tc.want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "weft-*")); len(left) > 0 {
		t.Errorf("refused imports left temporary files: %v", left)
	}
}

func TestFromDir(t *testing.T) {
	flat, err := ociimage.FromDir(rootDir(t), cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer flat.Remove()
	if e := tarEntries(t, flat.Path); e["bin/link"] != "server" {
		t.Errorf("entries %v", e)
	}
	if _, err := ociimage.FromDir(rootDir(t), api.ContainerImageConfig{}, t.TempDir()); err == nil {
		t.Error("an image without an entrypoint was made")
	}
}

func tarFolder(t *testing.T, dir, dst string) {
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		h, _ := tar.FileInfoHeader(fi, "")
		h.Name = rel
		tw.WriteHeader(h)
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			tw.Write(data)
		}
		return nil
	})
	tw.Close()
}
