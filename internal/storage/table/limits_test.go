package table

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// TestPropertyValueLimit: a string property is limited as Azure stores it,
// in UTF-16 (64 KiB: 32K characters), whatever its UTF-8 size. Every write
// (insert, replace, merge, both upserts, a batch) is held to it, and a
// refused write leaves the stored entity as it was.
func TestPropertyValueLimit(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tc := env.table(t, "limits")
	// 40,000 ASCII characters: 40,000 bytes of UTF-8, 80,000 of UTF-16.
	tooLong := strings.Repeat("x", 40_000)
	// 30,000 CJK characters: 90,000 bytes of UTF-8, 60,000 of UTF-16.
	wide := strings.Repeat("中", 30_000)
	entity := func(rk, s string) []byte {
		return mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": rk, "S": s})
	}
	if _, err := tc.AddEntity(ctx, entity("wide", wide), nil); err != nil {
		t.Fatalf("30,000 CJK characters (60 KiB as UTF-16) refused: %v", err)
	}
	got, err := tc.GetEntity(ctx, "p", "wide", nil)
	if err != nil || !strings.Contains(string(got.Value), wide) {
		t.Fatalf("the wide string did not come back: %v", err)
	}
	if _, err := tc.AddEntity(ctx, entity("kept", "v"), nil); err != nil {
		t.Fatal(err)
	}
	anyTag := azcore.ETagAny
	for _, w := range []struct {
		name  string
		write func() error
	}{
		{"insert", func() error { _, err := tc.AddEntity(ctx, entity("new", tooLong), nil); return err }},
		{"replace", func() error {
			_, err := tc.UpdateEntity(ctx, entity("kept", tooLong), &aztables.UpdateEntityOptions{IfMatch: &anyTag, UpdateMode: aztables.UpdateModeReplace})
			return err
		}},
		{"merge", func() error {
			_, err := tc.UpdateEntity(ctx, entity("kept", tooLong), &aztables.UpdateEntityOptions{IfMatch: &anyTag, UpdateMode: aztables.UpdateModeMerge})
			return err
		}},
		{"insert or replace", func() error {
			_, err := tc.UpsertEntity(ctx, entity("kept", tooLong), &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
			return err
		}},
		{"insert or merge", func() error {
			_, err := tc.UpsertEntity(ctx, entity("kept", tooLong), &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeMerge})
			return err
		}},
		{"batch", func() error {
			_, err := tc.SubmitTransaction(ctx, []aztables.TransactionAction{
				action(t, aztables.TransactionTypeAdd, "p", "b1", nil),
				action(t, aztables.TransactionTypeUpdateMerge, "p", "kept", map[string]any{"S": tooLong}),
			}, nil)
			return err
		}},
	} {
		err := w.write()
		if err == nil {
			t.Errorf("%s: a string of 40,000 characters was accepted", w.name)
			continue
		}
		// A batch is answered 202 with the refusal in its changeset
		// response, as Azure does.
		want := http.StatusBadRequest
		if w.name == "batch" {
			want = http.StatusAccepted
		}
		if status, code := errCode(t, err); status != want || code != "PropertyValueTooLarge" {
			t.Errorf("%s: %d %s, want %d PropertyValueTooLarge", w.name, status, code, want)
		}
	}
	keys, _ := listKeys(t, tc, nil)
	if strings.Join(keys, " ") != "p/kept p/wide" {
		t.Errorf("refused writes changed the table: %v", keys)
	}
	kept, err := tc.GetEntity(ctx, "p", "kept", nil)
	if err != nil || !strings.Contains(string(kept.Value), `"S":"v"`) {
		t.Errorf("refused writes changed the entity: %s %v", kept.Value, err)
	}
}

// TestEntityBodyTooLarge: a request body over the 4 MiB the service reads
// is 413 RequestBodyTooLarge, for a single entity and for a batch.
func TestEntityBodyTooLarge(t *testing.T) {
	env := newEnv(t)
	env.table(t, "bodies")
	sas := tableSAS(t, env, "bodies", aztables.SASPermissions{Add: true, Update: true})
	body := `{"PartitionKey":"p","RowKey":"r","S":"` + strings.Repeat("x", 5<<20) + `"}`
	status, hdr, _ := raw(t, http.MethodPost, env.endpoint+"/bodies?"+sas, map[string]string{"Content-Type": "application/json"}, body)
	if status != http.StatusRequestEntityTooLarge || hdr.Get("x-ms-error-code") != "RequestBodyTooLarge" {
		t.Errorf("5 MiB insert: %d %s, want 413 RequestBodyTooLarge", status, hdr.Get("x-ms-error-code"))
	}
	status, hdr, _ = raw(t, http.MethodPost, env.endpoint+"/$batch?"+sas, map[string]string{"Content-Type": "multipart/mixed; boundary=b"}, body)
	if status != http.StatusRequestEntityTooLarge || hdr.Get("x-ms-error-code") != "RequestBodyTooLarge" {
		t.Errorf("5 MiB batch: %d %s, want 413 RequestBodyTooLarge", status, hdr.Get("x-ms-error-code"))
	}
}
