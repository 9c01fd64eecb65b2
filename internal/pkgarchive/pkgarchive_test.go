package pkgarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPackUnpackRoundTripIsDeterministic(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "server"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.WriteFile(filepath.Join(src, "config.txt"), []byte("x=1\n"), 0o644)
	os.Symlink("bin/server", filepath.Join(src, "run"))

	var a, b bytes.Buffer
	if err := Pack(src, &a); err != nil {
		t.Fatal(err)
	}
	// Touching files changes times, not the archive.
	os.Chtimes(filepath.Join(src, "config.txt"), time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	if err := Pack(src, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("packing the same folder twice gave different bytes")
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := Unpack(&a, dst, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "bin", "server"))
	if err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("executable bit lost: %v %v", fi, err)
	}
	if link, _ := os.Readlink(filepath.Join(dst, "run")); link != "bin/server" {
		t.Errorf("link = %q", link)
	}
}

func TestUnpackRefusesUnsafeArchives(t *testing.T) {
	cases := map[string]tar.Header{
		"dot-dot":       {Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"absolute":      {Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		"escaping link": {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../../etc/passwd"},
		"absolute link": {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		"device":        {Name: "dev", Typeflag: tar.TypeChar},
		"hard link":     {Name: "hard", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"},
	}
	for name, hdr := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			gz := gzip.NewWriter(&buf)
			tw := tar.NewWriter(gz)
			tw.WriteHeader(&hdr)
			if hdr.Size > 0 {
				tw.Write([]byte("x"))
			}
			tw.Close()
			gz.Close()
			if _, err := Unpack(&buf, t.TempDir(), 1<<20, nil); !errors.Is(err, ErrUnsafe) {
				t.Errorf("Unpack = %v, want ErrUnsafe", err)
			}
		})
	}
}

func TestUnpackStopsAtTheLimit(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "big"), make([]byte, 4096), 0o644)
	var buf bytes.Buffer
	if err := Pack(src, &buf); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(&buf, t.TempDir(), 1000, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Unpack = %v, want ErrTooLarge", err)
	}
}
