package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// rcloneVersion is the rclone release scripts/deps.sh builds from the Go
// module proxy: a real, widely used client made for Azure Blob storage.
const rcloneVersion = "v1.68.2"

// rcloneBinary is where scripts/deps.sh builds rclone (make deps): built
// here, it took minutes of the test run's CPU.
func rcloneBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Skipf("no cache folder for rclone: %v", err)
	}
	bin := filepath.Join(cache, "weft-tools", "rclone-"+rcloneVersion, "rclone")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rclone %s is not built (make deps builds it): %v", rcloneVersion, err)
		}
		t.Skipf("rclone %s is not built (make deps builds it): the round trip is skipped", rcloneVersion)
	}
	return bin
}

// TestRcloneRoundTrip copies a folder up to the blob service with rclone,
// lists it, syncs a changed version and copies it back: what comes back is
// byte-identical to what went up.
func TestRcloneRoundTrip(t *testing.T) {
	parallel(t)
	requireE2E(t)
	rclone := rcloneBinary(t)
	srv, err := storageserver.Start(storageserver.Config{Data: t.TempDir(), Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	conf := filepath.Join(t.TempDir(), "rclone.conf")
	os.WriteFile(conf, nil, 0o600) // the remote comes from the environment
	env := append(os.Environ(),
		"RCLONE_CONFIG_WEFT_TYPE=azureblob",
		"RCLONE_CONFIG_WEFT_ACCOUNT="+storage.DevAccount,
		"RCLONE_CONFIG_WEFT_KEY="+storage.DevKey,
		"RCLONE_CONFIG_WEFT_ENDPOINT="+srv.BlobEndpoint(),
		"RCLONE_CONFIG="+conf,
	)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(rclone, append(args, "--retries", "1", "--low-level-retries", "1", "--contimeout", "5s")...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("rclone %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
			}
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("rclone %s did not finish in 2 minutes\n%s", strings.Join(args, " "), errOut.String())
		}
		return out.String()
	}

	src := t.TempDir()
	write := func(name string, size int) {
		t.Helper()
		data := make([]byte, size)
		rand.Read(data)
		path := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("big.bin", 5<<20+123) // several blocks
	write("empty.txt", 0)
	for _, name := range []string{"a.txt", "b.txt", "docs/readme.md", "docs/deep/nested/file.json", "photos/2026/01.jpg", "photos/2026/02.jpg"} {
		write(name, 1000+len(name)*37)
	}

	run("mkdir", "weft:backup")
	run("copy", src, "weft:backup")
	if got, want := lines(run("lsf", "-R", "--files-only", "weft:backup")), files(t, src); !equal(got, want) {
		t.Fatalf("rclone lsf after copy:\n got %v\nwant %v", got, want)
	}

	// Change the source: one file rewritten, one removed, one added. sync mirrors it.
	write("a.txt", 4321)
	os.Remove(filepath.Join(src, "b.txt"))
	write("docs/new.txt", 77)
	run("sync", src, "weft:backup")
	if got, want := lines(run("lsf", "-R", "--files-only", "weft:backup")), files(t, src); !equal(got, want) {
		t.Fatalf("rclone lsf after sync:\n got %v\nwant %v", got, want)
	}

	dst := t.TempDir()
	run("copy", "weft:backup", dst)
	for _, name := range files(t, src) {
		a, _ := os.ReadFile(filepath.Join(src, name))
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s came back different (%d bytes up, %d down, %v)", name, len(a), len(b), err)
		}
	}
	if got, want := files(t, dst), files(t, src); !equal(got, want) {
		t.Errorf("copied back %v, want %v", got, want)
	}
	run("check", src, "weft:backup") // rclone's own size and hash comparison
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }
