package nbd_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/internal/nbd"
)

func serve(t *testing.T, size int64) (sock string, file string) {
	dir := t.TempDir()
	file = filepath.Join(dir, "disk.raw")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	t.Cleanup(func() { f.Close() })
	sock = filepath.Join(dir, "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &nbd.Server{Name: "disk", Backend: &nbd.File{F: f, Len: size}}
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock, file
}

func qemuIO(t *testing.T, sock string, cmds ...string) string {
	t.Helper()
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, "nbd+unix:///disk?socket="+sock)
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io %v: %v\n%s", cmds, err, out)
	}
	return string(out)
}

// TestQEMUClient drives the server with QEMU's own NBD client.
func TestQEMUClient(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io (qemu-utils) is not installed")
	}
	sock, file := serve(t, 8<<20)
	out := qemuIO(t, sock,
		"write -P 0xab 0 64k",
		"write -P 0xcd 1m 4096",
		"aio_write -P 0x11 2m 512", "aio_write -P 0x22 3m 1m", "aio_flush",
		"flush",
		"read -P 0xab 0 64k",
		"read -P 0xcd 1m 4096",
		"read -P 0x22 3m 1m",
		"write -z 0 4096",
		"read -P 0 0 4096",
		"discard 4096 4096",
	)
	if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "error") {
		t.Fatalf("qemu-io reported a problem:\n%s", out)
	}
	data, _ := os.ReadFile(file)
	if !bytes.Equal(data[1<<20:1<<20+4096], bytes.Repeat([]byte{0xcd}, 4096)) || data[8192] != 0xab || data[2<<20] != 0x11 {
		t.Error("the file does not hold what the client wrote")
	}
	// Past the end: refused, the server keeps serving.
	past, _ := exec.Command("qemu-io", "-f", "raw", "-c", "write 8388096 1024", "nbd+unix:///disk?socket="+sock).CombinedOutput()
	if !strings.Contains(string(past), "failed") && !strings.Contains(string(past), "error") {
		t.Errorf("a write past the end was accepted: %s", past)
	}
	info, err := exec.Command("qemu-img", "info", "--output=json", "nbd+unix:///disk?socket="+sock).CombinedOutput()
	if err != nil || !strings.Contains(string(info), `"virtual-size": 8388608`) {
		t.Errorf("qemu-img info: %v %s", err, info)
	}
	if _, err := exec.Command("qemu-img", "info", "nbd+unix:///other?socket="+sock).CombinedOutput(); err == nil {
		t.Error("an unknown export name was served")
	}
}
