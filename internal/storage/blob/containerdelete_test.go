package blob

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// TestDeletedContainers: a deleted container kept for restore survives a
// restart with its blobs' bytes (their files stay referenced, so the
// sweep at Open keeps them); once its retention has ended the hourly
// sweep releases everything it held.
func TestDeletedContainers(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	svc, client := serveOn(t, dir, nil)
	// Container soft delete on, as Set Blob Service Properties sets it.
	if err := svc.update(func(t *txn) error {
		props := defaultServiceProps()
		props.ContainerDeleteRetentionPolicy = &rawXML{Inner: "<Enabled>true</Enabled><Days>1</Days>"}
		return putJSON(t.bucket(bktService), []byte("devstoreaccount1"), props)
	}); err != nil {
		t.Fatal(err)
	}
	cc := client.ServiceClient().NewContainerClient("box")
	if _, err := cc.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("b").Upload(ctx, nopCloser("in the trash"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("big").Upload(ctx, nopCloser(string(randBytes(1<<20, 2))), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc, client = serveOn(t, dir, nil)
	var version string
	if err := svc.view(func(tx *boltlog.Tx) error {
		k, _ := tx.Bucket(bktDelContainers).Cursor().First()
		_, version, _ = strings.Cut(strings.TrimPrefix(string(k), "devstoreaccount1\x00"), "\x00")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ServiceClient().RestoreContainer(ctx, "box", version, nil); err != nil {
		t.Fatal(err)
	}
	cc = client.ServiceClient().NewContainerClient("box")
	if got := download(t, ctx, cc.NewBlobClient("big"), nil); string(got) != string(randBytes(1<<20, 2)) {
		t.Fatalf("restored after a restart: %d bytes differ", len(got))
	}
	if _, err := cc.Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Within its retention the sweep keeps it; a day later it is gone.
	if err := svc.sweepDeletedContainers(svc.now()); err != nil {
		t.Fatal(err)
	}
	if err := svc.view(func(tx *boltlog.Tx) error {
		if k, _ := tx.Bucket(bktTrash).Cursor().First(); k == nil {
			t.Error("the sweep released a container within its retention")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	svc.skew.Store(int64(25 * time.Hour))
	if err := svc.sweepDeletedContainers(svc.now()); err != nil {
		t.Fatal(err)
	}
	assertNoData(t, svc)
	if err := svc.view(func(tx *boltlog.Tx) error {
		for _, b := range [][]byte{bktTrash, bktDelContainers} {
			if k, _ := tx.Bucket(b).Cursor().First(); k != nil {
				t.Errorf("%s holds %q", b, k)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
