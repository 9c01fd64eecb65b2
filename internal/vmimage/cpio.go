package vmimage

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// cpioWriter writes a cpio archive in the "newc" format, the one the Linux
// kernel unpacks as an initramfs. The standard library has no cpio package;
// the format is a fixed ASCII header per entry, the name and the data, each
// padded to 4 bytes.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: w, ino: 1} }

// Mode bits of cpio entries (as in struct stat).
const (
	cpioDir     = 0o040000
	cpioRegular = 0o100000
	cpioSymlink = 0o120000
	cpioCharDev = 0o020000
)

func (c *cpioWriter) entry(name string, mode uint32, nlink int, data []byte, rmajor, rminor int) {
	if c.err != nil {
		return
	}
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" {
		name = "."
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	c.ino++
	buf := make([]byte, 0, len(hdr)+len(name)+4+len(data)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, data...)
	buf = pad4(buf)
	_, c.err = c.w.Write(buf)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm fs.FileMode) {
	c.entry(name, cpioDir|uint32(perm.Perm()), 2, nil, 0, 0)
}

// File adds a regular file.
func (c *cpioWriter) File(name string, perm fs.FileMode, data []byte) {
	c.entry(name, cpioRegular|uint32(perm.Perm()), 1, data, 0, 0)
}

// Symlink adds a symbolic link name pointing to target.
func (c *cpioWriter) Symlink(name, target string) {
	c.entry(name, cpioSymlink|0o777, 1, []byte(target), 0, 0)
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm fs.FileMode, major, minor int) {
	c.entry(name, cpioCharDev|uint32(perm.Perm()), 1, nil, major, minor)
}

// Close writes the trailer. It returns the first error of any write.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, 1, nil, 0, 0)
	return c.err
}
