package controlapi_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
)

// TestDeleteServiceKeepDrives: a delete whose keepDrives is not a boolean
// is refused with 400 naming it, and leaves the service as it was.
func TestDeleteServiceKeepDrives(t *testing.T) {
	dir := t.TempDir()
	store, err := state.Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pkgs, err := pkgstore.Open(filepath.Join(dir, "packages"))
	if err != nil {
		t.Fatal(err)
	}
	ctl := fabric.New(fabric.Config{}, store, pkgs, nil)
	srv := httptest.NewServer(controlapi.New(controlapi.Config{Controller: ctl, Log: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	ctx := context.Background()
	var empty bytes.Buffer
	if err := pkgarchive.Pack(t.TempDir(), &empty); err != nil {
		t.Fatal(err)
	}
	pkg, err := ctl.PutPackage(ctx, &empty)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Deploy(ctx, api.DefaultTenant, api.ServiceSpec{Name: "pg", Roles: []api.RoleSpec{{
		Name: "db", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: pkg.Digest, Command: []string{"./db"}, Instances: 1,
	}}}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("DELETE", srv.URL+"/v1/services/pg?keepDrives=maybe", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `keepDrives: \"maybe\" is not true or false`) {
		t.Errorf("keepDrives=maybe: %d %s", resp.StatusCode, body)
	}
	if svc, err := ctl.Service(ctx, api.DefaultTenant, "pg"); err != nil || svc.Status == api.ServiceDeleting {
		t.Errorf("the service after the refused delete: %+v, %v", svc, err)
	}
}
