// Package untartest builds tar archives, the attacks on extraction among
// them, and checks that extracting one left everything outside its folder
// alone. The tests and fuzz targets of untar, imagecache and pkgarchive
// share it.
package untartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Entry is one tar entry; Type defaults to a regular file, Mode to 0644.
type Entry struct {
	Name, Body, Link string
	Type             byte
	Mode             int64
	Uid, Gid         int
	Size             int64 // when Body is empty: that many zero bytes
}

// Tar returns the entries as a tar.
func Tar(entries ...Entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Link, Uid: e.Uid, Gid: e.Gid, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		body := []byte(e.Body)
		if len(body) == 0 && e.Size > 0 {
			body = make([]byte, e.Size)
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err) // a test's own entries
		}
		tw.Write(body)
	}
	tw.Close()
	return buf.Bytes()
}

// Gzip compresses b, as packages are.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(b)
	gz.Close()
	return buf.Bytes()
}

// ChmodThroughLink is the image attack: a link v to host, then a folder
// "../v" with every mode bit set. An extraction that follows the link (or
// chmods it) changes host's mode.
func ChmodThroughLink(host string) []Entry {
	return []Entry{
		{Name: "v", Type: tar.TypeSymlink, Link: host},
		{Name: "../v", Type: tar.TypeDir, Mode: 0o7777},
	}
}

// LinkChain is the package attack: "a" links to ".", so a/a/a/d/up lands in
// d/up and its "../../.." climbs three folders above the package; tgt links
// to d/up/host, and FILE is written through it. Every link looks inside the
// package when read lexically from its own name. With the package
// extracted to Sandbox.Root, host is the sandbox's Host.
func LinkChain(host string) []Entry {
	return []Entry{
		{Name: "a", Type: tar.TypeSymlink, Link: "."},
		{Name: "d/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "a/a/a/d/up", Type: tar.TypeSymlink, Link: "../../.."},
		{Name: "tgt", Type: tar.TypeSymlink, Link: "d/up/" + host},
		{Name: "tgt/FILE", Body: "written outside"},
	}
}

// Sandbox is a temporary folder holding Root, where an archive is
// extracted, and Host, a folder with one file standing for the machine's
// own files. Root is two folders below the sandbox so that links climbing
// out of it land in the sandbox, not in the machine's folders.
type Sandbox struct {
	Dir  string // the sandbox
	Root string // Dir/node/instance, not created
	Host string // Dir/host, mode 0755, holding "file"
}

// HostName is Host's name in Dir: LinkChain(HostName) aims at Host.
const HostName = "host"

// NewSandbox makes a sandbox under t.TempDir().
func NewSandbox(t testing.TB) *Sandbox {
	t.Helper()
	dir := t.TempDir()
	s := &Sandbox{Dir: dir, Root: filepath.Join(dir, "node", "instance"), Host: filepath.Join(dir, HostName)}
	if err := os.MkdirAll(filepath.Join(dir, "node"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.Host, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.Host, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Host, "file"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// Check fails t if anything outside Root changed: Host's mode or files,
// or a new name in Dir or Dir/node.
func (s *Sandbox) Check(t testing.TB) {
	t.Helper()
	fi, err := os.Lstat(s.Host)
	if err != nil {
		t.Fatalf("host folder: %v", err)
	}
	if got := fi.Mode(); got != os.ModeDir|0o755 {
		t.Errorf("the host folder's mode changed to %v", got)
	}
	want := map[string][]string{
		s.Dir:                        {"host", "node"},
		s.Host:                       {"file"},
		filepath.Join(s.Dir, "node"): {"instance"},
	}
	for dir, names := range want {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, names) && !(dir == filepath.Join(s.Dir, "node") && len(got) == 0) {
			t.Errorf("%s holds %s, want %s: something was written outside the root", dir, strings.Join(got, ", "), strings.Join(names, ", "))
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.Host, "file")); err != nil || string(b) != "host" {
		t.Errorf("the host's file reads %q, %v", b, err)
	}
}
