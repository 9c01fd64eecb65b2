package nbd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/nbd"
)

// gatedFile is a File whose Flush tells entered, then waits until release
// is closed; flushes counts the flushes that returned.
type gatedFile struct {
	nbd.File
	entered chan struct{}
	release chan struct{}
	flushes atomic.Int32
}

func (g *gatedFile) Flush(ctx context.Context) error {
	g.entered <- struct{}{}
	<-g.release
	err := g.File.Flush(ctx)
	g.flushes.Add(1)
	return err
}

// kernelClient speaks the kernel's side of the transmission phase, as
// drivers/block/nbd.c does once given its socket with NBD_SET_SOCK:
// request headers whose 32-bit type carries the command flags in its upper
// half, and simple replies.
type kernelClient struct {
	t    *testing.T
	conn net.Conn
}

func (c kernelClient) send(typ uint16, flags uint16, handle, off uint64, length uint32, data []byte) {
	c.t.Helper()
	var hdr [28]byte
	binary.BigEndian.PutUint32(hdr[0:], 0x25609513)
	binary.BigEndian.PutUint32(hdr[4:], uint32(flags)<<16|uint32(typ))
	binary.BigEndian.PutUint64(hdr[8:], handle)
	binary.BigEndian.PutUint64(hdr[16:], off)
	binary.BigEndian.PutUint32(hdr[24:], length)
	if _, err := c.conn.Write(append(hdr[:], data...)); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads a reply and the n bytes of data that follow a successful one.
func (c kernelClient) reply(n int) (handle uint64, errno uint32, data []byte) {
	c.t.Helper()
	var hdr [16]byte
	if _, err := io.ReadFull(c.conn, hdr[:]); err != nil {
		c.t.Fatal(err)
	}
	if m := binary.BigEndian.Uint32(hdr[0:]); m != 0x67446698 {
		c.t.Fatalf("reply magic %#x", m)
	}
	errno, handle = binary.BigEndian.Uint32(hdr[4:]), binary.BigEndian.Uint64(hdr[8:])
	if errno == 0 && n > 0 {
		data = make([]byte, n)
		if _, err := io.ReadFull(c.conn, data); err != nil {
			c.t.Fatal(err)
		}
	}
	return handle, errno, data
}

// socketpair is a connected pair of unix stream sockets, as the drive
// gives one end to the kernel and serves the other.
func socketpair(t *testing.T) (net.Conn, net.Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "nbd")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return conns[0], conns[1]
}

const (
	cmdRead, cmdWrite, cmdDisc, cmdFlush, cmdTrim = 0, 1, 2, 3, 4
	flagFUA                                       = 1
)

// TestTransmissionOnly serves a connection that starts with requests, as
// the kernel's client sends them: reads, writes, trim, a flush answered
// only once the backend's flush returned, and a disconnect that ends
// ServeTransmission without error.
func TestTransmissionOnly(t *testing.T) {
	const size = 1 << 20
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(size)
	disk := &gatedFile{File: nbd.File{F: f, Len: size}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := &nbd.Server{Name: "d", Backend: disk}
	if got, want := srv.TransmissionFlags(), uint16(1|1<<2|1<<3|1<<5|1<<6); got != want {
		t.Errorf("TransmissionFlags = %#x, want %#x (HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES)", got, want)
	}
	kernelEnd, serverEnd := socketpair(t)
	defer kernelEnd.Close()
	done := make(chan error, 1)
	go func() { done <- srv.ServeTransmission(context.Background(), serverEnd) }()
	c := kernelClient{t: t, conn: kernelEnd}

	data := bytes.Repeat([]byte("weft"), 2048) // 8 KiB
	c.send(cmdWrite, 0, 1, 4096, uint32(len(data)), data)
	if h, errno, _ := c.reply(0); h != 1 || errno != 0 {
		t.Fatalf("write: handle %d errno %d", h, errno)
	}
	c.send(cmdRead, 0, 2, 4096, uint32(len(data)), nil)
	if h, errno, got := c.reply(len(data)); h != 2 || errno != 0 || !bytes.Equal(got, data) {
		t.Fatalf("read: handle %d errno %d, data equal %v", h, errno, bytes.Equal(got, data))
	}
	on := make([]byte, len(data))
	f.ReadAt(on, 4096)
	if !bytes.Equal(on, data) {
		t.Fatal("an acknowledged write is not in the backend")
	}

	// The flush waits in the backend; a read sent after it is answered
	// first, so the flush's reply can only come once the backend's
	// flush returned.
	c.send(cmdFlush, 0, 3, 0, 0, nil)
	<-disk.entered
	c.send(cmdRead, 0, 4, 0, 512, nil)
	if h, errno, _ := c.reply(512); h != 4 || errno != 0 {
		t.Fatalf("while a flush waits: reply for handle %d errno %d, want the read's (4)", h, errno)
	}
	close(disk.release)
	if h, errno, _ := c.reply(0); h != 3 || errno != 0 {
		t.Fatalf("flush: handle %d errno %d", h, errno)
	}
	if disk.flushes.Load() != 1 {
		t.Fatal("the flush was acknowledged before the backend's flush returned")
	}

	c.send(cmdTrim, 0, 5, 4096, 4096, nil)
	if h, errno, _ := c.reply(0); h != 5 || errno != 0 {
		t.Fatalf("trim: handle %d errno %d", h, errno)
	}
	c.send(cmdRead, 0, 6, 4096, 8192, nil)
	if _, _, got := c.reply(8192); !bytes.Equal(got[:4096], make([]byte, 4096)) || !bytes.Equal(got[4096:], data[4096:]) {
		t.Fatal("the trimmed range does not read as zeros, or the rest was trimmed too")
	}
	// FUA: the write is flushed before its reply.
	c.send(cmdWrite, flagFUA, 7, 0, 512, bytes.Repeat([]byte{7}, 512))
	if h, errno, _ := c.reply(0); h != 7 || errno != 0 {
		t.Fatalf("FUA write: handle %d errno %d", h, errno)
	}
	<-disk.entered
	if disk.flushes.Load() != 2 {
		t.Fatal("a FUA write was acknowledged before the backend's flush returned")
	}
	// Past the end: refused, the connection goes on.
	c.send(cmdRead, 0, 8, size-512, 1024, nil)
	if h, errno, _ := c.reply(1024); h != 8 || errno != 22 {
		t.Fatalf("read past the end: handle %d errno %d, want EINVAL", h, errno)
	}

	c.send(cmdDisc, 0, 9, 0, 0, nil)
	if err := <-done; err != nil {
		t.Fatalf("ServeTransmission after NBD_CMD_DISC: %v", err)
	}
	if n, err := kernelEnd.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the disconnect the server's end is still open: read %d, %v", n, err)
	}
}

// TestTransmissionOnlyEndsWithTheStream: a kernel end that closes (the
// device torn down without NBD_CMD_DISC) ends the serving without error.
func TestTransmissionOnlyEndsWithTheStream(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(4096)
	srv := &nbd.Server{Name: "d", Backend: &nbd.File{F: f, Len: 4096}}
	kernelEnd, serverEnd := socketpair(t)
	done := make(chan error, 1)
	go func() { done <- srv.ServeTransmission(context.Background(), serverEnd) }()
	kernelEnd.Close()
	if err := <-done; err != nil {
		t.Fatalf("ServeTransmission after the client closed: %v", err)
	}
}
