package drive_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/blobclient/blobtest"
	"github.com/weftcloud/weft/internal/vmdisk"
)

const (
	lease1 = "00000000-0000-0000-0000-000000000001"
	lease2 = "00000000-0000-0000-0000-000000000002"
)

func requireDrives(t *testing.T) {
	t.Helper()
	if err := drive.Available(); err != nil {
		t.Skipf("drives cannot be attached here: %v", err)
	}
}

// newDisk makes an empty page blob of size bytes under lease1.
func newDisk(t testing.TB, size int64) (*blobclient.Client, *vmdisk.Disk) {
	return newDiskNamed(t, "d1", size)
}

// newDiskNamed makes the empty page blob disks/name of size bytes, on a
// storage service of its own, under lease1.
func newDiskNamed(t testing.TB, name string, size int64) (*blobclient.Client, *vmdisk.Disk) {
	t.Helper()
	ctx := context.Background()
	c := blobtest.DevClient(t, nil)
	if err := c.CreateContainer(ctx, "disks"); err != nil {
		t.Fatal(err)
	}
	if err := vmdisk.Create(ctx, c, "disks", name, size, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.AcquireLease(ctx, "disks", name, lease1, -1); err != nil {
		t.Fatal(err)
	}
	return c, vmdisk.Open(c, "disks", name, size, lease1)
}

func attach(t *testing.T, disk drive.Disk, work string) *drive.Drive {
	t.Helper()
	d, err := drive.Attach(context.Background(), disk, drive.Options{Work: work, Mount: filepath.Join(work, "mnt")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Detach() })
	return d
}

func writeSynced(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func TestFilesOutliveTheMount(t *testing.T) {
	requireDrives(t)
	c, disk := newDisk(t, 64<<20)
	work := t.TempDir()
	d := attach(t, disk, work)
	data := make([]byte, 3<<20+123)
	rand.Read(data)
	if err := os.MkdirAll(filepath.Join(d.Path(), "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeSynced(filepath.Join(d.Path(), "a/b/data"), data); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Path(), "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the drive's files are still there after detaching: %v", err)
	}

	// Attached again, from a new Disk with nothing cached: the drive is
	// not formatted over, and holds the file.
	d = attach(t, vmdisk.Open(c, "disks", "d1", 64<<20, lease1), work)
	got, err := os.ReadFile(filepath.Join(d.Path(), "a/b/data"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the file read back differs from the one written")
	}
}

// TestDetachReachesOtherMountNamespaces: a process started in a mount
// namespace of its own while the drive is attached (as a process instance
// on a virtual network is, a slave of the host's) does not keep the drive:
// it detaches, and the process no longer has it mounted.
func TestDetachReachesOtherMountNamespaces(t *testing.T) {
	requireDrives(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("the test needs unshare (apt-get install util-linux)")
	}
	_, disk := newDisk(t, 16<<20)
	work := t.TempDir()
	d := attach(t, disk, work)
	sleeper := exec.Command("unshare", "--mount", "--propagation", "slave", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	proc := fmt.Sprintf("/proc/%d", sleeper.Process.Pid)
	self, _ := os.Readlink("/proc/self/ns/mnt")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		comm, _ := os.ReadFile(proc + "/comm")
		ns, _ := os.Readlink(proc + "/ns/mnt")
		if string(comm) == "sleep\n" && ns != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare did not start sleep in a mount namespace of its own")
		}
	}
	if got := fileSystemsUnder(t, proc+"/mountinfo", work); len(got) != 2 {
		t.Fatalf("the other namespace mounts %d file systems of the drive, want its copies of both: %q", len(got), got)
	}
	if err := d.Detach(); err != nil {
		t.Fatalf("detach with a copy in another mount namespace: %v", err)
	}
	if got := fileSystemsUnder(t, proc+"/mountinfo", work); len(got) != 0 {
		t.Errorf("the other namespace still mounts the drive: %q", got)
	}
}

// fileSystemsUnder lists the mounts under dir in a mountinfo file that are
// file systems of their own (their root is "/"), leaving out binds.
func fileSystemsUnder(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[3] == "/" && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, line)
		}
	}
	return out
}

func TestDiskWithOtherDataIsNotFormatted(t *testing.T) {
	requireDrives(t)
	ctx := context.Background()
	c, disk := newDisk(t, 16<<20)
	if err := disk.WriteAt(ctx, bytes.Repeat([]byte{1}, 4096), 0); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if d, err := drive.Attach(ctx, disk, drive.Options{Work: work, Mount: filepath.Join(work, "mnt")}); err == nil {
		d.Detach()
		t.Fatal("a disk holding data but no ext4 was attached")
	}
	resp, err := c.Get(ctx, "disks", "d1", "bytes=0-4095")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var head [4096]byte
	if _, err := resp.Body.Read(head[:1]); err != nil || head[0] != 1 {
		t.Fatal("the refused disk was changed")
	}
}

func TestFencedDriveRefusesWrites(t *testing.T) {
	requireDrives(t)
	ctx := context.Background()
	c, disk := newDisk(t, 32<<20)
	d := attach(t, disk, t.TempDir())
	if err := writeSynced(filepath.Join(d.Path(), "before"), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	// Another node takes the drive over.
	if err := c.BreakLease(ctx, "disks", "d1"); err != nil {
		t.Fatal(err)
	}
	if err := c.AcquireLease(ctx, "disks", "d1", lease2, -1); err != nil {
		t.Fatal(err)
	}
	err := writeSynced(filepath.Join(d.Path(), "after"), bytes.Repeat([]byte("x"), 64<<10))
	if err == nil {
		t.Fatal("a fenced drive acknowledged a synced write")
	}
	if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EROFS) {
		t.Errorf("a fenced write failed with %v, want EIO or EROFS", err)
	}
}

// TestSyncedFileIsInTheBlob reads the page blob itself, while the drive
// is still mounted: what an fsync returned for is in the storage service
// (a node dying now loses nothing), found by e2fsck and debugfs in a copy
// of the blob.
func TestSyncedFileIsInTheBlob(t *testing.T) {
	requireDrives(t)
	requireE2fsTools(t)
	c, disk := newDisk(t, 32<<20)
	d := attach(t, disk, t.TempDir())
	data := make([]byte, 200<<10)
	rand.Read(data)
	if err := writeSynced(filepath.Join(d.Path(), "f"), data); err != nil {
		t.Fatal(err)
	}
	if got := fileInBlob(t, c, "/f"); !bytes.Equal(got, data) {
		t.Fatalf("the blob holds %d bytes of the synced file, not the %d written", len(got), len(data))
	}
}

// requireE2fsTools skips where e2fsck and debugfs are missing.
func requireE2fsTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"e2fsck", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install e2fsprogs)", tool)
		}
	}
}

// fileInBlob reads the file at path of the ext4 in the blob disks/d1,
// through a copy of the blob, by e2fsck and debugfs.
func fileInBlob(t *testing.T, c *blobclient.Client, path string) []byte {
	t.Helper()
	resp, err := c.Get(context.Background(), "disks", "d1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	img := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// e2fsck replays the journal: the file may be only there so far. Exit
	// status 1 is "errors corrected", which the replay is.
	if out, err := exec.Command("e2fsck", "-fy", img).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck: %v\n%s", err, out)
		}
	}
	got, err := exec.Command("debugfs", "-R", "cat "+path, img).Output()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestNoProcessInheritsTheFUSEDevice: processes started while a drive is
// being attached do not inherit its /dev/fuse descriptor. One that did
// would keep the FUSE connection up after the attaching process died, and
// the drive's I/O would then hang rather than fail.
func TestNoProcessInheritsTheFUSEDevice(t *testing.T) {
	requireDrives(t)
	stop := make(chan struct{})
	leaked := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, _ := exec.Command("ls", "-l", "/proc/self/fd").Output()
			if bytes.Contains(out, []byte("/dev/fuse")) {
				select {
				case leaked <- string(out):
				default:
				}
			}
		}
	}()
	for i := range 4 {
		_, disk := newDiskNamed(t, fmt.Sprintf("d%d", i), 16<<20)
		attach(t, disk, t.TempDir())
	}
	close(stop)
	<-done
	select {
	case fds := <-leaked:
		t.Fatalf("a process started meanwhile holds /dev/fuse:\n%s", fds)
	default:
	}
}
