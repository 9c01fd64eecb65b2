package drive_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/vmdisk"
)

// cutShort is a disk that takes one write, then fails every other: a
// node that died formatting it.
type cutShort struct {
	*vmdisk.Disk
	writes int
}

func (d *cutShort) WriteAt(ctx context.Context, p []byte, off int64) error {
	if d.writes++; d.writes > 1 {
		return errors.New("cut short")
	}
	return d.Disk.WriteAt(ctx, p, off)
}

// TestFormatCutShortIsFormattedAgain: a format cut short leaves a disk
// that still reads as blank (the head, with the superblock, is written
// last), so the next Format makes the file system instead of taking the
// half-made one for ext4 or refusing the disk as holding other data.
func TestFormatCutShortIsFormattedAgain(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("needs e2fsprogs")
	}
	ctx := context.Background()
	_, disk := newDisk(t, 32<<20)
	if _, err := drive.Format(ctx, &cutShort{Disk: disk}, t.TempDir()); err == nil {
		t.Fatal("Format succeeded with one write")
	}
	if formatted, err := drive.Format(ctx, disk, t.TempDir()); err != nil || !formatted {
		t.Fatalf("Format after one cut short: %v, %v; want it formatted", formatted, err)
	}
}

// TestFormatMakesACheckedFileSystem formats a blank disk without mounting
// it (a VM's drive) and checks the blob with e2fsck: what mkfs.ext4 wrote
// reached the page blob, the head included. A second Format leaves it be,
// and so does one of a disk holding other data.
func TestFormatMakesACheckedFileSystem(t *testing.T) {
	if _, err := exec.LookPath("e2fsck"); err != nil {
		t.Skip("needs e2fsprogs")
	}
	ctx := context.Background()
	const size = 64 << 20
	c, disk := newDisk(t, size)
	if formatted, err := drive.Format(ctx, disk, t.TempDir()); err != nil || !formatted {
		t.Fatalf("Format of a blank disk: %v, %v", formatted, err)
	}
	img := filepath.Join(t.TempDir(), "blob.img")
	resp, err := c.Get(ctx, "disks", "d1", "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(data) != size {
		t.Fatalf("read the blob: %d bytes, %v", len(data), err)
	}
	if err := os.WriteFile(img, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("e2fsck", "-f", "-n", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck of the formatted blob: %v\n%s", err, out)
	}
	if formatted, err := drive.Format(ctx, disk, t.TempDir()); err != nil || formatted {
		t.Fatalf("Format of a formatted disk: %v, %v; want it left as it is", formatted, err)
	}

	_, other := newDiskNamed(t, "d2", 16<<20)
	junk := bytes.Repeat([]byte{1}, 4096)
	if err := other.WriteAt(ctx, junk, 8192); err != nil {
		t.Fatal(err)
	}
	if _, err := drive.Format(ctx, other, t.TempDir()); err == nil {
		t.Fatal("a disk holding data but no ext4 was formatted")
	}
	got := make([]byte, 4096)
	if err := other.ReadAt(ctx, got, 8192); err != nil || !bytes.Equal(got, junk) {
		t.Fatalf("the refused disk was changed (%v)", err)
	}
}
