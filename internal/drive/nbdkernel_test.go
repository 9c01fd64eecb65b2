package drive_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftcloud/weft/internal/drive"
)

// TestKernelNBD attaches a drive through the kernel's nbd driver: made
// with mkfs.ext4, a file written and synced, the drive detached, and the
// file read back from the blob. It needs the driver (/dev/nbd0) and root;
// the hosts this path was written on have neither the driver nor its
// module, so there it skips, and the path has not run against a kernel.
func TestKernelNBD(t *testing.T) {
	if _, err := os.Stat("/dev/nbd0"); err != nil {
		if _, serr := os.Stat("/sys/block/nbd0"); serr != nil {
			t.Skipf("the kernel's nbd driver is not here (%v): the kernel nbd path is untested on this host", err)
		}
	}
	requireDrives(t)
	requireE2fsTools(t)
	c, disk := newDisk(t, 64<<20)
	work := t.TempDir()
	d, err := drive.Attach(context.Background(), disk, drive.Options{Work: work, Mount: filepath.Join(work, "mnt"), Device: drive.DeviceNBD})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Detach() })
	if d.Device() != drive.DeviceNBD {
		t.Fatalf("attached through %s", d.Device())
	}
	data := make([]byte, 1<<20+77)
	rand.Read(data)
	if err := writeSynced(filepath.Join(d.Path(), "f"), data); err != nil {
		t.Fatal(err)
	}
	if got := fileInBlob(t, c, "/f"); !bytes.Equal(got, data) {
		t.Fatalf("while mounted, the blob holds %d bytes of the synced file, not the %d written", len(got), len(data))
	}
	if err := d.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(work, "nbd-device")); !os.IsNotExist(err) {
		t.Errorf("the nbd device's record outlived the detach: %v", err)
	}
	if got := fileInBlob(t, c, "/f"); !bytes.Equal(got, data) {
		t.Fatalf("after detaching, the blob holds %d bytes of the file, not the %d written", len(got), len(data))
	}
}
