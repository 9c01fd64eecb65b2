package table

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storagetest"
)

// The storage emulator's documented development account.
const (
	devAccount = "devstoreaccount1"
	devKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

type testEnv struct {
	endpoint string
	cred     *aztables.SharedKeyCredential
	svc      *aztables.ServiceClient
}

func clientOptions() *aztables.ClientOptions {
	return &aztables.ClientOptions{ClientOptions: policy.ClientOptions{
		Retry:                           policy.RetryOptions{MaxRetries: -1},
		InsecureAllowCredentialWithHTTP: true,
	}}
}

// newEnv serves a fresh table service through the storage front end and
// returns an SDK client for it.
func newEnv(t testing.TB) *testEnv {
	t.Helper()
	s, err := Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return envFor(t, s)
}

func envFor(t testing.TB, s *Service) *testEnv {
	t.Helper()
	endpoint := storagetest.Serve(t, storage.Table, s)
	cred, err := aztables.NewSharedKeyCredential(devAccount, devKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := aztables.NewServiceClientWithSharedKey(endpoint, cred, clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{endpoint: endpoint, cred: cred, svc: svc}
}

func (e *testEnv) table(t testing.TB, name string) *aztables.Client {
	t.Helper()
	c := e.svc.NewClient(name)
	if _, err := c.CreateTable(context.Background(), nil); err != nil {
		t.Fatalf("create table %s: %v", name, err)
	}
	return c
}

// errCode returns the Azure error code of err, failing if err is not an
// Azure response error.
func errCode(t testing.TB, err error) (int, string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not an azcore.ResponseError", err, err)
	}
	return re.StatusCode, re.ErrorCode
}

func wantCode(t testing.TB, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d %s", status, code)
	}
	gs, gc := errCode(t, err)
	if gs != status || gc != code {
		t.Fatalf("error %d %s, want %d %s (%v)", gs, gc, status, code, err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTables(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	for _, n := range []string{"alpha", "Beta2", "gamma", "delta"} {
		env.table(t, n)
	}
	_, err := env.svc.NewClient("ALPHA").CreateTable(ctx, nil)
	wantCode(t, err, http.StatusConflict, "TableAlreadyExists")

	for _, bad := range []string{"ab", "1abc", "tables", "has-dash", strings.Repeat("a", 64)} {
		_, err := env.svc.CreateTable(ctx, bad, nil)
		wantCode(t, err, http.StatusBadRequest, "InvalidResourceName")
	}

	list := func(opts *aztables.ListTablesOptions) (names []string, pages int) {
		p := env.svc.NewListTablesPager(opts)
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, tb := range page.Tables {
				names = append(names, *tb.Name)
			}
		}
		return names, pages
	}
	top := int32(3)
	names, pages := list(&aztables.ListTablesOptions{Top: &top})
	if diff := cmp.Diff([]string{"alpha", "Beta2", "delta", "gamma"}, names); diff != "" {
		t.Errorf("tables (-want +got):\n%s", diff)
	}
	if pages != 2 {
		t.Errorf("listed in %d pages, want 2", pages)
	}
	filter := "TableName ge 'c' and TableName lt 'e'"
	if names, _ := list(&aztables.ListTablesOptions{Filter: &filter}); !cmp.Equal(names, []string{"delta"}) {
		t.Errorf("filtered tables = %v, want [delta]", names)
	}

	if _, err := env.svc.DeleteTable(ctx, "gamma", nil); err != nil {
		t.Fatal(err)
	}
	_, err = env.svc.DeleteTable(ctx, "gamma", nil)
	wantCode(t, err, http.StatusNotFound, "ResourceNotFound")
	_, err = env.svc.NewClient("gamma").AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": "r"}), nil)
	wantCode(t, err, http.StatusNotFound, "TableNotFound")
	if names, _ := list(nil); len(names) != 3 {
		t.Errorf("after delete: %v", names)
	}
}

func TestEntityOperations(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tc := env.table(t, "people")

	ent := map[string]any{"PartitionKey": "p'1", "RowKey": "r 1", "Name": "Ada", "Age": 36}
	add, err := tc.AddEntity(ctx, mustJSON(t, ent), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(add.ETag), `W/"datetime'`) {
		t.Errorf("ETag %q is not Azure's datetime form", add.ETag)
	}
	_, err = tc.AddEntity(ctx, mustJSON(t, ent), nil)
	wantCode(t, err, http.StatusConflict, "EntityAlreadyExists")

	get := func(pk, rk string) (map[string]any, azcore.ETag) {
		t.Helper()
		r, err := tc.GetEntity(ctx, pk, rk, nil)
		if err != nil {
			t.Fatalf("get %s/%s: %v", pk, rk, err)
		}
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		return m, r.ETag
	}
	got, etag1 := get("p'1", "r 1")
	if got["Name"] != "Ada" || got["Age"] != float64(36) || got["PartitionKey"] != "p'1" {
		t.Errorf("got %v", got)
	}
	if etag1 != add.ETag {
		t.Errorf("GetEntity ETag %q, AddEntity ETag %q", etag1, add.ETag)
	}

	// Replace with the current ETag, then a stale one.
	repl := map[string]any{"PartitionKey": "p'1", "RowKey": "r 1", "Name": "Ada L."}
	up, err := tc.UpdateEntity(ctx, mustJSON(t, repl), &aztables.UpdateEntityOptions{IfMatch: &etag1, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		t.Fatal(err)
	}
	if up.ETag == etag1 {
		t.Error("replace kept the old ETag")
	}
	_, err = tc.UpdateEntity(ctx, mustJSON(t, repl), &aztables.UpdateEntityOptions{IfMatch: &etag1, UpdateMode: aztables.UpdateModeReplace})
	wantCode(t, err, http.StatusPreconditionFailed, "UpdateConditionNotSatisfied")
	if got, _ := get("p'1", "r 1"); got["Age"] != nil || got["Name"] != "Ada L." {
		t.Errorf("after replace: %v", got)
	}

	// Merge keeps what it does not name.
	merge := map[string]any{"PartitionKey": "p'1", "RowKey": "r 1", "City": "London"}
	if _, err := tc.UpdateEntity(ctx, mustJSON(t, merge), &aztables.UpdateEntityOptions{IfMatch: &up.ETag, UpdateMode: aztables.UpdateModeMerge}); err != nil {
		t.Fatal(err)
	}
	got, etag3 := get("p'1", "r 1")
	if got["Name"] != "Ada L." || got["City"] != "London" {
		t.Errorf("after merge: %v", got)
	}
	// Update of a missing entity is 404.
	_, err = tc.UpdateEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "x", "RowKey": "y"}), nil)
	wantCode(t, err, http.StatusNotFound, "ResourceNotFound")

	// Upserts create, then replace or merge.
	for _, mode := range []aztables.UpdateMode{aztables.UpdateModeReplace, aztables.UpdateModeMerge} {
		rk := "u-" + string(mode)
		if _, err := tc.UpsertEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "up", "RowKey": rk, "A": 1}), &aztables.UpsertEntityOptions{UpdateMode: mode}); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.UpsertEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "up", "RowKey": rk, "B": 2}), &aztables.UpsertEntityOptions{UpdateMode: mode}); err != nil {
			t.Fatal(err)
		}
		got, _ := get("up", rk)
		_, hasA := got["A"]
		if want := mode == aztables.UpdateModeMerge; hasA != want || got["B"] != float64(2) {
			t.Errorf("upsert %s: %v", mode, got)
		}
	}

	// Delete with a stale ETag, then the right one.
	_, err = tc.DeleteEntity(ctx, "p'1", "r 1", &aztables.DeleteEntityOptions{IfMatch: &etag1})
	wantCode(t, err, http.StatusPreconditionFailed, "UpdateConditionNotSatisfied")
	if _, err := tc.DeleteEntity(ctx, "p'1", "r 1", &aztables.DeleteEntityOptions{IfMatch: &etag3}); err != nil {
		t.Fatal(err)
	}
	_, err = tc.GetEntity(ctx, "p'1", "r 1", nil)
	wantCode(t, err, http.StatusNotFound, "ResourceNotFound")
	_, err = tc.DeleteEntity(ctx, "p'1", "r 1", nil)
	wantCode(t, err, http.StatusNotFound, "ResourceNotFound")
}
