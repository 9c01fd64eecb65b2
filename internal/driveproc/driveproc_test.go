package driveproc_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/drive"
	"github.com/weftcloud/weft/internal/driveproc"
	"github.com/weftcloud/weft/internal/procstat"
	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/storageserver"
	"github.com/weftcloud/weft/internal/vmdisk"
)

// The test binary is the drive server too, as `weft drive-serve` is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "drive-serve" {
		os.Exit(driveproc.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

var serveCommand = []string{os.Args[0], "drive-serve"}

const lease = "00000000-0000-0000-0000-000000000001"

// newDrive makes a blank 32 MiB page blob on a storage service of its own,
// leased with lease, and returns what a node is given to reach it.
func newDrive(t *testing.T) driveproc.Spec {
	t.Helper()
	if err := drive.Available(); err != nil {
		t.Skipf("drives cannot be attached here: %v", err)
	}
	srv, err := storageserver.Start(storageserver.Config{Data: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	key, _ := base64.StdEncoding.DecodeString(storage.DevKey)
	blobs := blobclient.New(srv.URL(storage.Blob), storage.DevAccount, key)
	ctx := context.Background()
	const size = 32 << 20
	if err := blobs.CreateContainer(ctx, "drives"); err != nil {
		t.Fatal(err)
	}
	if err := vmdisk.Create(ctx, blobs, "drives", "d1", size, nil); err != nil {
		t.Fatal(err)
	}
	if err := blobs.AcquireLease(ctx, "drives", "d1", lease, -1); err != nil {
		t.Fatal(err)
	}
	sas := storage.BlobSAS(storage.DevAccount, key, "drives", "d1", "rw", time.Now().Add(time.Hour))
	return driveproc.Spec{Lease: lease, Access: api.DiskAccess{
		Name: "data", Size: size, BlobEndpoint: srv.URL(storage.Blob), Account: storage.DevAccount,
		Container: "drives", Blob: "d1", SAS: sas.Encode(),
	}}
}

// start starts a drive server in dir and stops it when the test ends.
func start(t *testing.T, dir string, spec driveproc.Spec) *driveproc.Proc {
	t.Helper()
	p, err := driveproc.Start(context.Background(), serveCommand, dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p, err := driveproc.Find(dir); err == nil {
			p.Stop(context.Background())
		}
		driveproc.Clear(dir)
	})
	return p
}

func writeSynced(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.Create(path)
	if err == nil {
		_, err = f.WriteString(data)
		err = errors.Join(err, f.Sync(), f.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// mounted says whether something is mounted at dir.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestServerOutlivesItsHandle: the drive is mounted by a process of its
// own, found again from its folder alone (as a restarted agent does) only
// for the same drive and lease, and stopped through the handle found: it
// unmounts the drive and exits, and the drive, served anew, holds what was
// written.
func TestServerOutlivesItsHandle(t *testing.T) {
	spec := newDrive(t)
	dir := t.TempDir()
	p := start(t, dir, spec)
	if p.PID() == os.Getpid() {
		t.Fatal("the drive is served by the test itself")
	}
	writeSynced(t, filepath.Join(p.Mount(), "before"), "one\n")

	found, err := driveproc.Adopt(dir, spec)
	if err != nil || found.PID() != p.PID() || found.Mount() != p.Mount() {
		t.Fatalf("adopt: %v, %v; want the server %d", found, err, p.PID())
	}
	other := spec
	other.Lease = "00000000-0000-0000-0000-000000000002"
	if _, err := driveproc.Adopt(dir, other); !errors.Is(err, driveproc.ErrNotServing) {
		t.Errorf("adopt under another lease: %v, want ErrNotServing", err)
	}
	other = spec
	other.Access.Blob = "d2"
	if _, err := driveproc.Adopt(dir, other); !errors.Is(err, driveproc.ErrNotServing) {
		t.Errorf("adopt for another blob: %v, want ErrNotServing", err)
	}

	// A file held open keeps the drive mounted and served.
	held, err := os.Open(filepath.Join(p.Mount(), "before"))
	if err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	holder := fmt.Sprintf("pid %d (%s) has %s open", os.Getpid(), strings.TrimSpace(string(comm)), held.Name())
	if err := found.Stop(context.Background()); err == nil || !strings.Contains(err.Error(), "busy") || !strings.Contains(err.Error(), holder) {
		t.Errorf("stopping the server of a drive with an open file: %v, want the drive busy and %q", err, holder)
	}
	if _, err := driveproc.Adopt(dir, spec); err != nil {
		t.Errorf("the server after a refused stop: %v", err)
	}
	// Freed, the drive is detached by the server that was asked to stop.
	held.Close()
	for deadline := time.Now().Add(30 * time.Second); procstat.Alive(p.PID(), found.Start()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, driveproc.LogFile))
			t.Fatalf("the server asked to stop still serves its drive, freed, 30s later; its log:\n%s", log)
		}
	}
	if err := found.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mounted(t, p.Mount()) {
		t.Error("the drive is still mounted after its server stopped")
	}
	if st, _, err := procstat.Stat(p.PID()); err == nil && st != 'Z' {
		t.Errorf("the server %d still runs (state %c) after Stop", p.PID(), st)
	}
	if _, err := driveproc.Find(dir); !errors.Is(err, driveproc.ErrNotServing) {
		t.Errorf("find after stop: %v, want ErrNotServing", err)
	}

	again := start(t, dir, spec)
	if b, err := os.ReadFile(filepath.Join(again.Mount(), "before")); err != nil || string(b) != "one\n" {
		t.Errorf("the drive served again reads %q, %v", b, err)
	}
}

// TestKilledServerIsServedAgain: a server killed with SIGKILL is no longer
// found; a new one in the same folder takes down what it left mounted and
// serves the drive with what was synced.
func TestKilledServerIsServedAgain(t *testing.T) {
	spec := newDrive(t)
	dir := t.TempDir()
	p := start(t, dir, spec)
	writeSynced(t, filepath.Join(p.Mount(), "kept"), "synced\n")
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := driveproc.Adopt(dir, spec); errors.Is(err, driveproc.ErrNotServing) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed server is still found")
		}
	}
	again := start(t, dir, spec)
	if again.PID() == p.PID() {
		t.Fatal("the same server")
	}
	if b, err := os.ReadFile(filepath.Join(again.Mount(), "kept")); err != nil || string(b) != "synced\n" {
		t.Errorf("after the server was killed, the drive reads %q, %v", b, err)
	}
}

// TestBadSpecIsReported: a server that cannot serve its drive says why.
func TestBadSpecIsReported(t *testing.T) {
	spec := newDrive(t)
	spec.Access.Blob = "missing"
	_, err := driveproc.Start(context.Background(), serveCommand, t.TempDir(), spec)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("start on a missing blob: %v", err)
	}
	t.Log(err)
}
