package vms

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/storageserver"
)

// TestDisksStayOnTheirServer: a disk made while one server led is served
// from that server's storage after another took over; a disk recorded
// before disks named their server is taken to be on the leader's.
func TestDisksStayOnTheirServer(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	made := NewDisks("http://10.0.0.1:10000", "weftsystem", key)
	disk := made.newDisk("default", "db", "abc123", "os", 1<<30)
	if disk.Endpoint != "http://10.0.0.1:10000" || disk.Blob != "default-db-abc123-os" {
		t.Fatalf("new disk: %+v", disk)
	}
	now := NewDisks("http://10.0.0.2:10000", "weftsystem", key)
	for _, tc := range []struct {
		disk api.DiskSpec
		want string
	}{
		{disk, "http://10.0.0.1:10000"},
		{api.DiskSpec{Name: "os", Size: 1 << 30, Blob: "old-os"}, "http://10.0.0.2:10000"},
	} {
		access, err := now.Access(tc.disk)
		if err != nil {
			t.Fatal(err)
		}
		if access.BlobEndpoint != tc.want {
			t.Errorf("disk %s is served from %s, want %s", tc.disk.Blob, access.BlobEndpoint, tc.want)
		}
		sas, err := url.ParseQuery(access.SAS)
		if err != nil || sas.Get("sig") == "" || sas.Get("sp") != "rw" {
			t.Errorf("disk %s: SAS %q", tc.disk.Blob, access.SAS)
		}
		if got := now.client(tc.disk); got == nil || (tc.disk.Endpoint == "") != (got == now.blobs) {
			t.Errorf("disk %s: the client is not the one of its storage", tc.disk.Blob)
		}
	}
}

// TestDiskMadeBeforeInit: a disk asked for before the server made the
// disks' container (the storage service came up after the deploy) makes
// the container itself.
func TestDiskMadeBeforeInit(t *testing.T) {
	srv, err := storageserver.Start(storageserver.Config{Data: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	key, _ := base64.StdEncoding.DecodeString(storage.DevKey)
	d := NewDisks(srv.URL(storage.Blob), storage.DevAccount, key)
	disk := d.Spec("early", "data", 1<<20)
	if err := d.Make(context.Background(), disk, nil); err != nil {
		t.Fatalf("make a disk before Init: %v", err)
	}
	if err := d.Make(context.Background(), disk, nil); !errors.Is(err, blobclient.ErrExists) {
		t.Errorf("make it again: %v, want ErrExists", err)
	}
}
