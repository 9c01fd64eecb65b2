package controlapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/fabric/fabrictest"
)

// TestDeleteServiceKeepDrives: a delete whose keepDrives is not a boolean
// is refused with 400 naming it, and leaves the service as it was.
func TestDeleteServiceKeepDrives(t *testing.T) {
	ctl := fabrictest.New(t, fabric.Config{}, false)
	srv := httptest.NewServer(controlapi.New(controlapi.Config{Controller: ctl.Controller, Log: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	ctx := context.Background()
	pkg := ctl.EmptyPackage(t)
	if _, err := ctl.Deploy(ctx, api.DefaultTenant, api.ServiceSpec{Name: "pg", Roles: []api.RoleSpec{{
		Name: "db", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: pkg, Command: []string{"./db"}, Instances: 1,
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
