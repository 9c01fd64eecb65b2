package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/peercopy"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage/blobclient/blobtest"
)

// newStore is an image store over a real storage service and state of
// its own, with fetch as its way to the other servers.
func newStore(t *testing.T, st state.Store, fetch Fetch) *Store {
	t.Helper()
	s := New(st, blobtest.DevClient(t, nil), fetch, slog.New(slog.DiscardHandler))
	if err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// TestCopiesFromAnotherServer: two servers share the state; the image is
// uploaded to one. The other copies the file when asked for it, lists
// none missing afterwards, and drops its copy once the image is deleted;
// a file stored but named by no image yet (an import under way) is kept.
func TestCopiesFromAnotherServer(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	first := newStore(t, st, nil)
	fetches := 0
	second := newStore(t, st, func(ctx context.Context, digest string) (io.ReadCloser, error) {
		fetches++
		resp, err := first.OpenFile(ctx, digest, "")
		if err != nil {
			return nil, err
		}
		return resp.Body, nil
	})

	rootfs := bytes.Repeat([]byte("layer"), 1000)
	d := digestOf(rootfs)
	if err := first.PutFile(ctx, d, int64(len(rootfs)), bytes.NewReader(rootfs)); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Create(ctx, api.DefaultTenant, api.Image{Name: "app", Type: api.ImageContainer,
		Container: &api.ContainerImageConfig{Entrypoint: []string{"/app"}},
		Files:     []api.ImageFile{{Name: api.ImageFileRootfs, Digest: d, Size: int64(len(rootfs))}}}); err != nil {
		t.Fatal(err)
	}
	if missing, err := second.reconcileFiles(ctx, orphanAge); err != nil || !slices.Equal(missing, []string{d}) {
		t.Fatalf("missing on the second server: %v, %v; want [%s]", missing, err, d)
	}
	resp, err := second.OpenFile(ctx, d, "")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, rootfs) || fetches != 1 {
		t.Fatalf("read %d bytes through the second server after %d fetches", len(got), fetches)
	}
	if missing, err := second.reconcileFiles(ctx, orphanAge); err != nil || len(missing) != 0 {
		t.Fatalf("missing after the copy: %v, %v", missing, err)
	}

	pending := []byte("an import under way")
	if err := second.PutFile(ctx, digestOf(pending), int64(len(pending)), bytes.NewReader(pending)); err != nil {
		t.Fatal(err)
	}
	if err := first.Delete(ctx, api.DefaultTenant, "app", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := second.reconcileFiles(ctx, orphanAge); err != nil {
		t.Fatal(err)
	}
	for _, digest := range []string{d, digestOf(pending)} {
		if _, err := second.blobs.Size(ctx, container, fileBlob(digest)); err != nil {
			t.Fatalf("%s went before its age: %v", digest, err)
		}
	}
	if _, err := second.reconcileFiles(ctx, 0); err != nil {
		t.Fatal(err)
	}
	for _, digest := range []string{d, digestOf(pending)} {
		if _, err := second.blobs.Size(ctx, container, fileBlob(digest)); err == nil {
			t.Errorf("%s is still stored on the second server once old and named by no image", digest)
		}
	}
	if _, err := second.FileSize(peercopy.LocalOnly(ctx), d); err == nil {
		t.Error("the deleted image's file is still there")
	}
}
