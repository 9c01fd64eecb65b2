package accounts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage"
)

func newStore(t testing.TB, dev bool) *Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, func() Endpoints {
		return Endpoints{Blob: "http://127.0.0.1:10000", Queue: "http://127.0.0.1:10001", Table: "http://127.0.0.1:10002"}
	}, dev)
}

func TestAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, false)
	acct, err := s.Create(ctx, api.DefaultTenant, "photos")
	if err != nil {
		t.Fatal(err)
	}
	if acct.Endpoints["blob"] != "http://127.0.0.1:10000/photos" {
		t.Errorf("blob endpoint %q", acct.Endpoints["blob"])
	}
	if _, err := s.Create(ctx, api.DefaultTenant, "photos"); !errors.Is(err, api.ErrConflict) {
		t.Errorf("second create: %v, want conflict", err)
	}
	keys, err := s.AccountKeys(ctx, api.DefaultTenant, "photos")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.Keys(ctx, "photos")
	if err != nil || len(raw) != 2 || len(raw[0]) != 64 {
		t.Fatalf("Keys: %v, %d keys", err, len(raw))
	}
	again, err := s.Regenerate(ctx, api.DefaultTenant, "photos", "key1")
	if err != nil {
		t.Fatal(err)
	}
	if again.Key1 == keys.Key1 || again.Key2 != keys.Key2 {
		t.Errorf("regenerate key1 changed the wrong key")
	}
	// The front end's lookup (its decoded records kept by revision) has
	// the new key at once.
	if now, err := s.Keys(ctx, "photos"); err != nil || base64.StdEncoding.EncodeToString(now[0]) != again.Key1 {
		t.Errorf("Keys after regenerating key1: %v, first key is not the new one", err)
	}
	if got := s.List(ctx, api.DefaultTenant); len(got) != 1 || got[0].Name != "photos" {
		t.Errorf("List = %+v", got)
	}
	if err := s.Delete(ctx, api.DefaultTenant, "photos"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Keys(ctx, "photos"); !errors.Is(err, storage.ErrNoAccount) {
		t.Errorf("Keys after delete: %v, want ErrNoAccount", err)
	}
}

func TestAccountNamesAndDevAccount(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"ab", "UPPER", "with-dash", "waytoolongforanaccountname1", storage.DevAccount} {
		if _, err := newStore(t, false).Create(ctx, api.DefaultTenant, name); err == nil {
			t.Errorf("Create(%q) accepted", name)
		}
	}
	if _, err := newStore(t, false).Keys(ctx, storage.DevAccount); err == nil {
		t.Error("dev account served without dev mode")
	}
	if _, err := newStore(t, true).Keys(ctx, storage.DevAccount); err != nil {
		t.Errorf("dev account not served in dev mode: %v", err)
	}
}

// TestAccountsShowTheStorageOfNow: every server's storage serves every
// account (it is replicated), so an account is shown with the endpoints
// the store is given now, not those of when it was made.
func TestAccountsShowTheStorageOfNow(t *testing.T) {
	ctx := context.Background()
	made := newStore(t, false)
	if _, err := made.Create(ctx, api.DefaultTenant, "photos"); err != nil {
		t.Fatal(err)
	}
	now := New(made.st, func() Endpoints {
		return Endpoints{Blob: "http://10.0.0.2:10000", Queue: "http://10.0.0.2:10001", Table: "http://10.0.0.2:10002"}
	}, false)
	if got := now.List(ctx, api.DefaultTenant)[0].Endpoints["table"]; got != "http://10.0.0.2:10002/photos" {
		t.Errorf("the table endpoint is %q", got)
	}
	keys, err := now.AccountKeys(ctx, api.DefaultTenant, "photos")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(keys.ConnectionString, "BlobEndpoint=http://10.0.0.2:10000/photos;") {
		t.Errorf("connection string %q", keys.ConnectionString)
	}
}

// The development account's keys are shown, as the emulator documents
// them, only when the store serves it; it can be neither regenerated nor
// deleted.
func TestDevAccountKeys(t *testing.T) {
	ctx := context.Background()
	if _, err := newStore(t, false).AccountKeys(ctx, api.DefaultTenant, storage.DevAccount); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("dev account keys without dev mode: %v, want not found", err)
	}
	s := newStore(t, true)
	keys, err := s.AccountKeys(ctx, api.DefaultTenant, storage.DevAccount)
	if err != nil {
		t.Fatal(err)
	}
	want := api.StorageAccountKeys{
		Name: storage.DevAccount, Key1: storage.DevKey, Key2: storage.DevKey,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + storage.DevKey +
			";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;",
	}
	if keys != want {
		t.Errorf("AccountKeys(devstoreaccount1) = %+v\nwant %+v", keys, want)
	}
	if _, err := s.Regenerate(ctx, api.DefaultTenant, storage.DevAccount, "key1"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("regenerate the dev key: %v, want invalid", err)
	}
	if err := s.Delete(ctx, api.DefaultTenant, storage.DevAccount); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("delete the dev account: %v, want invalid", err)
	}
	if _, err := s.Keys(ctx, storage.DevAccount); err != nil {
		t.Errorf("dev account no longer served: %v", err)
	}
}

// TestListByTenant: a tenant lists its own accounts (through the index by
// tenant), the operator every one; accounts stored before the index are
// indexed when the leader takes office; a deleted account leaves the index.
func TestListByTenant(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, false)
	for _, a := range [][2]string{{"acme", "acmeone"}, {"acme", "acmetwo"}, {"globex", "globexone"}} {
		if _, err := s.Create(ctx, a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	// An account from before the index: its record only.
	data, _ := json.Marshal(record{Name: "oldone", Tenant: "acme", Key1: newKey(), Key2: newKey()})
	if _, err := s.st.Apply(ctx, []state.Op{{Kind: state.KindAccounts, Key: "oldone", Value: data}}); err != nil {
		t.Fatal(err)
	}
	names := func(tenant string) string {
		var out []string
		for _, a := range s.List(ctx, tenant) {
			out = append(out, a.Name)
		}
		return strings.Join(out, " ")
	}
	if got := names("acme"); got != "acmeone acmetwo" {
		t.Errorf("acme's accounts before indexing: %q", got)
	}
	if err := s.IndexByTenant(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names("acme"); got != "acmeone acmetwo oldone" {
		t.Errorf("acme's accounts: %q", got)
	}
	if got := names(api.AllTenants); got != "acmeone acmetwo globexone oldone" {
		t.Errorf("every account: %q", got)
	}
	if err := s.Delete(ctx, "acme", "acmeone"); err != nil {
		t.Fatal(err)
	}
	if got := names("acme"); got != "acmetwo oldone" {
		t.Errorf("acme's accounts after a delete: %q", got)
	}
	if err := s.Delete(ctx, "globex", "acmetwo"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("globex deleting acme's account: %v", err)
	}
}

// TestPagesAreTheList: a tenant's list and every tenant's, walked in pages
// of every size, are the whole list in name order (the development
// account in its place, the system account never), and say when no more
// follow.
func TestPagesAreTheList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, true)
	for i, name := range []string{"acmezz", "acmeaa", "globexb", "acmedd", "globexa", "aaaa"} {
		tenant := "acme"
		if strings.HasPrefix(name, "globex") || i == 5 {
			tenant = api.DefaultTenant
		}
		if _, err := s.Create(ctx, tenant, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []string{"acme", api.DefaultTenant, api.AllTenants} {
		var want []string
		for _, a := range s.List(ctx, tenant) {
			want = append(want, a.Name)
		}
		slices.Sort(want)
		for limit := 1; limit <= len(want)+1; limit++ {
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				page, more := s.Page(ctx, tenant, after, limit)
				if len(page) > limit || pages > len(want) {
					t.Fatalf("%s, pages of %d: a page of %d", tenant, limit, len(page))
				}
				for _, a := range page {
					got = append(got, a.Name)
				}
				if !more {
					break
				}
				after = page[len(page)-1].Name
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s in pages of %d: %v, want %v", tenant, limit, got, want)
			}
		}
	}
}
