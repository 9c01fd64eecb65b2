package table

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

func action(t testing.TB, kind aztables.TransactionType, pk, rk string, props map[string]any) aztables.TransactionAction {
	m := map[string]any{"PartitionKey": pk, "RowKey": rk}
	for k, v := range props {
		m[k] = v
	}
	return aztables.TransactionAction{ActionType: kind, Entity: mustJSON(t, m)}
}

func TestBatch(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tc := env.table(t, "batch")
	for _, rk := range []string{"upd", "del", "mrg"} {
		if _, err := tc.AddEntity(ctx, mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": rk, "V": 1, "Keep": "k"}), nil); err != nil {
			t.Fatal(err)
		}
	}
	actions := []aztables.TransactionAction{
		action(t, aztables.TransactionTypeAdd, "p", "new1", map[string]any{"V": 2}),
		action(t, aztables.TransactionTypeAdd, "p", "new2", nil),
		action(t, aztables.TransactionTypeUpdateReplace, "p", "upd", map[string]any{"V": 3}),
		action(t, aztables.TransactionTypeUpdateMerge, "p", "mrg", map[string]any{"V": 4}),
		action(t, aztables.TransactionTypeDelete, "p", "del", nil),
		action(t, aztables.TransactionTypeInsertReplace, "p", "ups1", map[string]any{"V": 5}),
		action(t, aztables.TransactionTypeInsertMerge, "p", "ups2", map[string]any{"V": 6}),
	}
	if _, err := tc.SubmitTransaction(ctx, actions, nil); err != nil {
		t.Fatal(err)
	}
	keys, _ := listKeys(t, tc, nil)
	if got := strings.Join(keys, " "); got != "p/mrg p/new1 p/new2 p/upd p/ups1 p/ups2" {
		t.Errorf("after batch: %s", got)
	}
	for rk, want := range map[string]string{"upd": `"V":3`, "mrg": `"Keep":"k"`, "ups2": `"V":6`} {
		r, err := tc.GetEntity(ctx, "p", rk, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(r.Value), want) {
			t.Errorf("%s = %s, want %s in it", rk, r.Value, want)
		}
	}

	// A failing operation (index 2 inserts an existing entity) must leave
	// everything as it was.
	failing := []aztables.TransactionAction{
		action(t, aztables.TransactionTypeAdd, "p", "x1", nil),
		action(t, aztables.TransactionTypeDelete, "p", "new1", nil),
		action(t, aztables.TransactionTypeAdd, "p", "new2", nil),
	}
	_, err := tc.SubmitTransaction(ctx, failing, nil)
	if err == nil {
		t.Fatal("batch with a duplicate insert succeeded")
	}
	if !strings.Contains(err.Error(), "2:The specified entity already exists") {
		t.Errorf("error does not name operation 2: %v", err)
	}
	if _, code := errCode(t, err); code != "EntityAlreadyExists" {
		t.Errorf("code %q", code)
	}
	after, _ := listKeys(t, tc, nil)
	if strings.Join(after, " ") != strings.Join(keys, " ") {
		t.Errorf("failed batch changed the table: %v", after)
	}

	// Different partitions, duplicate rows and a stale ETag are refused.
	stale := azcore.ETag(`W/"datetime'2000-01-01T00%3A00%3A00Z'"`)
	staleUpd := action(t, aztables.TransactionTypeUpdateReplace, "p", "upd", nil)
	staleUpd.IfMatch = &stale
	for name, acts := range map[string][]aztables.TransactionAction{
		"partitions": {action(t, aztables.TransactionTypeAdd, "p", "a", nil), action(t, aztables.TransactionTypeAdd, "q", "b", nil)},
		"duplicate":  {action(t, aztables.TransactionTypeAdd, "p", "a", nil), action(t, aztables.TransactionTypeInsertMerge, "p", "a", nil)},
		"stale etag": {action(t, aztables.TransactionTypeAdd, "p", "a", nil), staleUpd},
	} {
		if _, err := tc.SubmitTransaction(ctx, acts, nil); err == nil {
			t.Errorf("%s: batch succeeded", name)
		}
	}
	if after, _ := listKeys(t, tc, nil); len(after) != len(keys) {
		t.Errorf("refused batches changed the table: %v", after)
	}

	// More than 100 operations is refused whole, inside the changeset
	// response as Azure answers (the batch itself is 202).
	var many []aztables.TransactionAction
	for i := range 101 {
		many = append(many, action(t, aztables.TransactionTypeAdd, "m", strings.Repeat("x", i+1), nil))
	}
	_, err = tc.SubmitTransaction(ctx, many, nil)
	wantCode(t, err, http.StatusAccepted, "InvalidInput")
}
