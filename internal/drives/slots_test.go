package drives_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/drives"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/pkgarchive"
)

// TestSlotDrives: a role's drives are made for each of its slots when the
// model is deployed, kept when the role scales down and found again when
// it scales back up, and deleted with the service unless it is deleted
// keeping them.
func TestSlotDrives(t *testing.T) {
	ctx := context.Background()
	st, disks, _ := start(t)
	var ctl *fabric.Controller
	m := drives.New(st, drives.QuotaFunc(func(tenant string, size api.Bytes) error {
		return ctl.CheckDiskQuota(tenant, size)
	}), disks, slog.New(slog.DiscardHandler))
	ctl = fabric.New(fabric.Config{Drives: m, Tick: 20 * time.Millisecond}, st, newPkgs(t), nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ctl.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	var empty bytes.Buffer
	if err := pkgarchive.Pack(t.TempDir(), &empty); err != nil {
		t.Fatal(err)
	}
	pkg, err := ctl.PutPackage(ctx, &empty)
	if err != nil {
		t.Fatal(err)
	}
	model := func(name string, instances int) api.ServiceSpec {
		return api.ServiceSpec{Name: name, Roles: []api.RoleSpec{{
			Name: "db", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: pkg.Digest, Command: []string{"./db"},
			Instances: instances, Persistence: api.Persistent,
			Drives: []api.RoleDrive{{Name: "data", Size: 16 << 20}},
		}}}
	}
	blobsOf := func(service string) map[string]string {
		out := map[string]string{}
		for _, d := range m.List(api.DefaultTenant) {
			if d.Slot != nil && d.Slot.Service == service {
				out[d.Name] = d.Blob
			}
		}
		return out
	}
	planned := func(spec api.ServiceSpec) (makes, keeps []string) {
		t.Helper()
		p, err := ctl.Plan(ctx, api.DefaultTenant, spec)
		if err != nil {
			t.Fatal(err)
		}
		return p.Roles[0].MakesDrives, p.Roles[0].KeepsDrives
	}
	if makes, keeps := planned(model("pg", 2)); !slices.Equal(makes, []string{"pg-db-0-data", "pg-db-1-data"}) || keeps != nil {
		t.Errorf("the plan of a new service makes drives %v and keeps %v", makes, keeps)
	}
	if _, err := ctl.Deploy(ctx, api.DefaultTenant, model("pg", 3)); err != nil {
		t.Fatal(err)
	}
	if makes, keeps := planned(model("pg", 4)); !slices.Equal(makes, []string{"pg-db-3-data"}) || len(keeps) != 3 {
		t.Errorf("the plan of a fourth slot makes drives %v and keeps %v", makes, keeps)
	}
	made := blobsOf("pg")
	var names []string
	for n := range made {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"pg-db-0-data", "pg-db-1-data", "pg-db-2-data"}; !slices.Equal(names, want) {
		t.Fatalf("drives made for the slots: %v, want %v", names, want)
	}
	if _, err := ctl.Scale(ctx, api.DefaultTenant, "pg", "db", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Scale(ctx, api.DefaultTenant, "pg", "db", 3); err != nil {
		t.Fatal(err)
	}
	if again := blobsOf("pg"); len(again) != 3 || again["pg-db-2-data"] != made["pg-db-2-data"] || again["pg-db-1-data"] != made["pg-db-1-data"] {
		t.Errorf("after scaling 3 -> 1 -> 3 the slots' drives are %v, were %v", again, made)
	}

	// A slot's drive is not deleted alone while its service exists.
	if err := m.Delete(ctx, api.DefaultTenant, "pg-db-1-data"); !isCode(err, api.CodeConflict) || !strings.Contains(err.Error(), "weft service delete pg") {
		t.Errorf("deleting a slot's drive of a running service: %v, want a conflict that says how", err)
	}
	if again := blobsOf("pg"); again["pg-db-1-data"] != made["pg-db-1-data"] {
		t.Errorf("after the refused delete the slots' drives are %v", again)
	}

	if _, err := ctl.Deploy(ctx, api.DefaultTenant, model("kept", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.DeleteService(ctx, api.DefaultTenant, "pg", false); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.DeleteService(ctx, api.DefaultTenant, "kept", true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(ctl.Services(ctx, api.DefaultTenant)) > 0 || len(blobsOf("pg")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("10s after deleting the services: services %v, pg's drives %v", ctl.Services(ctx, api.DefaultTenant), blobsOf("pg"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if kept := blobsOf("kept"); len(kept) != 1 {
		t.Errorf("the drives of the service deleted keeping them: %v", kept)
	}
	// Deployed again, the service finds the drive it kept.
	before := blobsOf("kept")
	if _, err := ctl.Deploy(ctx, api.DefaultTenant, model("kept", 1)); err != nil {
		t.Fatal(err)
	}
	if after := blobsOf("kept"); after["kept-db-0-data"] != before["kept-db-0-data"] {
		t.Errorf("deployed again the service has drive %v, kept %v", after, before)
	}
	// Deleted keeping it once more, the drive may then be deleted alone.
	if _, err := ctl.DeleteService(ctx, api.DefaultTenant, "kept", true); err != nil {
		t.Fatal(err)
	}
	for len(ctl.Services(ctx, api.DefaultTenant)) > 0 {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("the service kept is not deleted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := m.Delete(ctx, api.DefaultTenant, "kept-db-0-data"); err != nil {
		t.Errorf("deleting the drive kept from a deleted service: %v", err)
	}
}

func isCode(err error, code string) bool {
	var apiErr *api.Error
	return errors.As(err, &apiErr) && apiErr.Code == code
}

// TestSlotDrivesOverQuota: a model whose drives do not all fit the
// tenant's disk quota is refused, and leaves neither the service nor any
// of the drives it made before reaching the quota.
func TestSlotDrivesOverQuota(t *testing.T) {
	ctx := context.Background()
	st, disks, _ := start(t)
	var m *drives.Manager
	m = drives.New(st, drives.QuotaFunc(func(tenant string, size api.Bytes) error {
		if len(m.List(tenant)) >= 2 {
			return api.Errorf(api.CodeForbidden, "disk quota: 2 drives allowed")
		}
		return nil
	}), disks, slog.New(slog.DiscardHandler))
	ctl := fabric.New(fabric.Config{Drives: m}, st, newPkgs(t), nil)
	var empty bytes.Buffer
	if err := pkgarchive.Pack(t.TempDir(), &empty); err != nil {
		t.Fatal(err)
	}
	pkg, err := ctl.PutPackage(ctx, &empty)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ctl.Deploy(ctx, api.DefaultTenant, api.ServiceSpec{Name: "pg", Roles: []api.RoleSpec{{
		Name: "db", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: pkg.Digest, Command: []string{"./db"},
		Instances: 3, Drives: []api.RoleDrive{{Name: "data", Size: 16 << 20}},
	}}})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Code != api.CodeForbidden {
		t.Fatalf("deploy over the disk quota: %v, want a forbidden error", err)
	}
	if got := m.List(api.DefaultTenant); len(got) != 0 {
		t.Errorf("drives left by the refused deploy: %+v", got)
	}
	if got := ctl.Services(ctx, api.DefaultTenant); len(got) != 0 {
		t.Errorf("services after the refused deploy: %+v", got)
	}
}
