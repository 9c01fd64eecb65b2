package drives_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/drives"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/storageserver"
	"github.com/weftcloud/weft/internal/vms"
)

// TestSnapshotRestoresIntoANewDrive: a drive made from a snapshot holds
// the bytes the drive held when the snapshot was taken, not what was
// written after; deleting the source leaves the copy whole.
func TestSnapshotRestoresIntoANewDrive(t *testing.T) {
	ctx := context.Background()
	st, disks, blobs := start(t)
	m := drives.New(st, fabric.New(fabric.Config{}, st, newPkgs(t), nil), disks, slog.New(slog.DiscardHandler))

	src, err := m.Create(ctx, "t1", api.CreateDrive{Name: "data", Size: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Repeat([]byte("before.."), 1024)
	after := bytes.Repeat([]byte("after..."), 1024)
	if err := blobs.PutPages(ctx, "disks", src.Blob, 1<<20, before, ""); err != nil {
		t.Fatal(err)
	}
	snap, err := m.Snapshot(ctx, "t1", "data")
	if err != nil {
		t.Fatal(err)
	}
	if err := blobs.PutPages(ctx, "disks", src.Blob, 1<<20, after, ""); err != nil {
		t.Fatal(err)
	}
	copied, err := m.Create(ctx, "t1", api.CreateDrive{Name: "copy", FromSnapshot: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	if copied.Size != src.Size || copied.From != snap.ID {
		t.Errorf("the copy: %+v", copied)
	}
	if _, err := m.Create(ctx, "t2", api.CreateDrive{Name: "stolen", FromSnapshot: snap.ID}); err == nil {
		t.Error("another tenant made a drive from t1's snapshot")
	}
	if err := m.Delete(ctx, "t1", "data"); err != nil {
		t.Fatal(err)
	}
	read := func(blob string) []byte {
		resp, err := blobs.Get(ctx, "disks", blob, "bytes=1048576-1056767")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	if !bytes.Equal(read(copied.Blob), before) {
		t.Error("the copy does not hold what the drive held at the snapshot")
	}
	if _, err := blobs.Get(ctx, "disks", src.Blob, ""); err == nil {
		t.Error("the deleted drive's blob is still there")
	}
	if got := m.List("t1"); len(got) != 1 || got[0].Name != "copy" {
		t.Errorf("t1's drives: %+v", got)
	}
}

// start opens a state store and a storage service with the disks
// container, for a drive manager.
func start(t *testing.T) (state.Store, *vms.Disks, *blobclient.Client) {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := storageserver.Start(storageserver.Config{Data: filepath.Join(dir, "storage")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	key, _ := base64.StdEncoding.DecodeString(storage.DevKey)
	disks := vms.NewDisks(srv.URL(storage.Blob), storage.DevAccount, key)
	if err := disks.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st, disks, blobclient.New(srv.URL(storage.Blob), storage.DevAccount, key)
}

func newPkgs(t *testing.T) *pkgstore.Store {
	t.Helper()
	pkgs, err := pkgstore.Open(filepath.Join(t.TempDir(), "packages"))
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}
