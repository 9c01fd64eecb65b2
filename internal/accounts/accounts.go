// Package accounts manages the storage service's accounts in the
// controller's state: names, two keys each, and the lookup the storage
// front end calls on every request to verify a signature.
package accounts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage"
)

// Endpoints are the storage service's base URLs, e.g. http://127.0.0.1:10000.
type Endpoints struct {
	Blob  string `json:"blob"`
	Queue string `json:"queue"`
	Table string `json:"table"`
}

// Store keeps accounts in the controller's state.
type Store struct {
	st  state.Store
	ep  func() Endpoints
	dev bool // also serve the emulator's development account
	// decoded keeps each account's record as decoded at the revision of
	// its state entry (name -> decodedRecord): the storage front end looks
	// an account up on every request, and a list of every tenant's
	// accounts would otherwise decode all of them for each page.
	decoded sync.Map
}

type decodedRecord struct {
	rev uint64
	rec record
}

var _ storage.Accounts = (*Store)(nil)

// New returns the account store; ep says which storage endpoints to give
// users (every server's storage serves every account). With dev, the
// well-known development account (devstoreaccount1) is served too, as the
// Azure emulator does.
func New(st state.Store, ep func() Endpoints, dev bool) *Store {
	return &Store{st: st, ep: ep, dev: dev}
}

type record struct {
	Name      string    `json:"name"`
	Tenant    string    `json:"tenant"`
	Key1      string    `json:"key1"`
	Key2      string    `json:"key2"`
	CreatedAt time.Time `json:"createdAt"`
}

// Create makes a tenant's account with two new keys. Account names are
// one name space for every tenant (they are in the storage URLs, as in
// Azure), so a name another tenant holds is taken.
func (s *Store) Create(ctx context.Context, tenant, name string) (api.StorageAccount, error) {
	if !storage.ValidAccountName(name) {
		return api.StorageAccount{}, api.Errorf(api.CodeInvalid, "name: %q is not a storage account name (3-24 lowercase letters and digits)", name)
	}
	if name == storage.DevAccount || name == SystemAccount {
		return api.StorageAccount{}, api.Errorf(api.CodeConflict, "name: %s is reserved", name)
	}
	rec := record{Name: name, Tenant: tenant, Key1: newKey(), Key2: newKey(), CreatedAt: time.Now().UTC()}
	data, _ := json.Marshal(rec)
	// The revision check makes a concurrent create of the same name fail.
	_, err := s.st.Apply(ctx, []state.Op{
		{Kind: state.KindAccounts, Key: name, Check: true, Rev: 0},
		{Kind: state.KindAccounts, Key: name, Value: data},
		{Kind: kindByTenant, Key: byTenantKey(tenant, name), Value: []byte("{}")},
	})
	if errors.Is(err, state.ErrConflict) {
		return api.StorageAccount{}, api.Errorf(api.CodeConflict, "storage account name %s is taken: account names are unique across the cloud", name)
	}
	if err != nil {
		return api.StorageAccount{}, fmt.Errorf("accounts: create %s: %w", name, err)
	}
	return s.view(rec), nil
}

// List returns a tenant's accounts (every tenant's with api.AllTenants),
// not their keys.
func (s *Store) List(ctx context.Context, tenant string) []api.StorageAccount {
	out := []api.StorageAccount{}
	if s.dev && ownsDev(tenant) {
		out = append(out, s.view(record{Name: storage.DevAccount, Tenant: api.DefaultTenant}))
	}
	if tenant == api.AllTenants {
		for _, e := range s.st.List(state.KindAccounts, "") {
			if rec, err := s.decode(e); err == nil && rec.Name != SystemAccount {
				out = append(out, s.view(rec))
			}
		}
		return out
	}
	// A tenant's accounts through the index: a tenant's list costs its own
	// accounts, not every tenant's.
	for _, e := range s.st.List(kindByTenant, tenant+"/") {
		_, name, _ := strings.Cut(e.Key, "/")
		if rec, err := s.lookup(name); err == nil && rec.Tenant == tenant {
			out = append(out, s.view(rec))
		}
	}
	return out
}

// Page returns at most limit of the accounts List returns, those whose
// names come after after, in name order, and whether more follow. Only the
// page's accounts are looked at: the operator's pages over every tenant's
// 100,000 accounts each cost their own 1,000, not the whole list.
func (s *Store) Page(ctx context.Context, tenant, after string, limit int) ([]api.StorageAccount, bool) {
	kind, prefix := kindByTenant, tenant+"/"
	if tenant == api.AllTenants {
		kind, prefix = state.KindAccounts, ""
	}
	var out []api.StorageAccount
	if s.dev && ownsDev(tenant) && storage.DevAccount > after {
		out = append(out, s.view(record{Name: storage.DevAccount, Tenant: api.DefaultTenant}))
	}
	// limit+1 accounts (the one more says whether more follow), in
	// windows of the state's keys: the system account is skipped.
	from := prefix + after
	for len(out) <= limit {
		entries := s.st.ListAfter(kind, prefix, from, limit+1-len(out))
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			name := strings.TrimPrefix(e.Key, prefix)
			if rec, err := s.lookup(name); err == nil && name != SystemAccount && (tenant == api.AllTenants || rec.Tenant == tenant) {
				out = append(out, s.view(rec))
			}
		}
		from = entries[len(entries)-1].Key
	}
	slices.SortFunc(out, func(a, b api.StorageAccount) int { return strings.Compare(a.Name, b.Name) })
	if len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

// kindByTenant indexes accounts by tenant ("TENANT/NAME"), written in the
// batch that creates or deletes the account.
const kindByTenant = "accounts-by-tenant"

func byTenantKey(tenant, name string) string { return tenant + "/" + name }

// IndexByTenant adds the index entries of accounts made before the index
// existed; the leader calls it when it takes office.
func (s *Store) IndexByTenant(ctx context.Context) error {
	var ops []state.Op
	for _, e := range s.st.List(state.KindAccounts, "") {
		var rec record
		if json.Unmarshal(e.Value, &rec) != nil || rec.Name == SystemAccount {
			continue
		}
		if _, ok := s.st.Get(kindByTenant, byTenantKey(rec.Tenant, rec.Name)); !ok {
			ops = append(ops, state.Op{Kind: kindByTenant, Key: byTenantKey(rec.Tenant, rec.Name), Value: []byte("{}")})
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := s.st.Apply(ctx, ops); err != nil {
		return fmt.Errorf("accounts: index by tenant: %w", err)
	}
	return nil
}

// AccountKeys returns an account's keys and a connection string. When the
// store serves the development account, it answers for it too, so a user
// can see what UseDevelopmentStorage=true stands for (the Go SDK does not
// understand that shorthand and needs the full string).
func (s *Store) AccountKeys(ctx context.Context, tenant, name string) (api.StorageAccountKeys, error) {
	if s.dev && name == storage.DevAccount && ownsDev(tenant) {
		return s.DevAccountKeys(), nil
	}
	rec, err := s.get(tenant, name)
	if err != nil {
		return api.StorageAccountKeys{}, err
	}
	return s.keysView(rec), nil
}

// DevAccountKeys returns the development account's key and connection
// string. The emulator's account has one documented key; both key1 and key2
// carry it, so a script that reads either gets a key that works.
func (s *Store) DevAccountKeys() api.StorageAccountKeys {
	return s.keysView(record{Name: storage.DevAccount, Key1: storage.DevKey, Key2: storage.DevKey})
}

// Regenerate replaces key1 or key2; the other keeps working meanwhile.
func (s *Store) Regenerate(ctx context.Context, tenant, name, which string) (api.StorageAccountKeys, error) {
	if s.dev && name == storage.DevAccount && ownsDev(tenant) {
		return api.StorageAccountKeys{}, api.Errorf(api.CodeInvalid, "name: the key of %s is the storage emulator's documented key and cannot be regenerated", name)
	}
	rec, err := s.get(tenant, name)
	if err != nil {
		return api.StorageAccountKeys{}, err
	}
	switch which {
	case "key1":
		rec.Key1 = newKey()
	case "key2":
		rec.Key2 = newKey()
	default:
		return api.StorageAccountKeys{}, api.Errorf(api.CodeInvalid, "key: %q is not key1 or key2", which)
	}
	data, _ := json.Marshal(rec)
	if _, err := s.st.Apply(ctx, []state.Op{{Kind: state.KindAccounts, Key: name, Value: data}}); err != nil {
		return api.StorageAccountKeys{}, fmt.Errorf("accounts: regenerate %s: %w", name, err)
	}
	return s.keysView(rec), nil
}

// Delete removes an account: its keys stop working at once.
func (s *Store) Delete(ctx context.Context, tenant, name string) error {
	if s.dev && name == storage.DevAccount && ownsDev(tenant) {
		return api.Errorf(api.CodeInvalid, "name: %s is the development account, served while the server runs with it; it cannot be deleted", name)
	}
	rec, err := s.get(tenant, name)
	if err != nil {
		return err
	}
	_, err = s.st.Apply(ctx, []state.Op{{Kind: state.KindAccounts, Key: name, Delete: true}, {Kind: kindByTenant, Key: byTenantKey(rec.Tenant, name), Delete: true}})
	s.decoded.Delete(name) // on other servers, at their next lookup of the name
	return err
}

// Keys implements storage.Accounts for the storage front end.
func (s *Store) Keys(ctx context.Context, account string) ([][]byte, error) {
	if s.dev && account == storage.DevAccount {
		return storage.DevAccounts().Keys(ctx, account)
	}
	rec, err := s.lookup(account)
	if err != nil {
		return nil, storage.ErrNoAccount
	}
	k1, err1 := base64.StdEncoding.DecodeString(rec.Key1)
	k2, err2 := base64.StdEncoding.DecodeString(rec.Key2)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("accounts: %s has a corrupt key", account)
	}
	return [][]byte{k1, k2}, nil
}

// System returns the account Weft keeps its own files in (images, VM
// disks), creating it on first use. It is hidden from users: not listed,
// not deletable, its keys not shown.
func (s *Store) System(ctx context.Context) (name string, key []byte, err error) {
	rec, err := s.lookup(SystemAccount)
	if errors.Is(err, errNoRecord) {
		rec = record{Name: SystemAccount, Tenant: systemTenant, Key1: newKey(), Key2: newKey(), CreatedAt: time.Now().UTC()}
		data, _ := json.Marshal(rec)
		_, err = s.st.Apply(ctx, []state.Op{
			{Kind: state.KindAccounts, Key: SystemAccount, Check: true, Rev: 0},
			{Kind: state.KindAccounts, Key: SystemAccount, Value: data},
		})
		if errors.Is(err, state.ErrConflict) { // another server made it first
			rec, err = s.lookup(SystemAccount)
		}
	}
	if err != nil {
		return "", nil, fmt.Errorf("accounts: system account: %w", err)
	}
	key, err = base64.StdEncoding.DecodeString(rec.Key1)
	if err != nil {
		return "", nil, fmt.Errorf("accounts: system account has a corrupt key")
	}
	return SystemAccount, key, nil
}

// SystemAccount is the name of the account System returns.
const SystemAccount = "weftsystem"

const systemTenant = "system"

var errNoRecord = errors.New("accounts: no such account")

// get returns a tenant's account (any tenant's with api.AllTenants): the
// system account is no one's, and another tenant's is not found.
func (s *Store) get(tenant, name string) (record, error) {
	notFound := api.Errorf(api.CodeNotFound, "no storage account named %s", name)
	if name == SystemAccount {
		return record{}, notFound
	}
	rec, err := s.lookup(name)
	if errors.Is(err, errNoRecord) || (err == nil && tenant != api.AllTenants && rec.Tenant != tenant) {
		return record{}, notFound
	}
	return rec, err
}

// TenantOf returns the tenant that owns the account name; false for an
// unknown account and for the system account, which is the cloud's own.
func (s *Store) TenantOf(name string) (string, bool) {
	if name == storage.DevAccount {
		return api.DefaultTenant, true
	}
	rec, err := s.lookup(name)
	if err != nil || rec.Tenant == systemTenant {
		return "", false
	}
	return rec.Tenant, true
}

// ownsDev: the development account is the default tenant's.
func ownsDev(tenant string) bool { return tenant == api.DefaultTenant || tenant == api.AllTenants }

// Owned counts a tenant's accounts (a tenant that owns any is not deleted).
func (s *Store) Owned(tenant string) int {
	n := 0
	for _, a := range s.List(context.Background(), tenant) {
		if a.Name != storage.DevAccount {
			n++
		}
	}
	return n
}

func (s *Store) lookup(name string) (record, error) {
	e, ok := s.st.Get(state.KindAccounts, name)
	if !ok {
		s.decoded.Delete(name)
		return record{}, errNoRecord
	}
	return s.decode(e)
}

// decode decodes an account's state entry, once per revision of it.
func (s *Store) decode(e state.Entry) (record, error) {
	if d, ok := s.decoded.Load(e.Key); ok && d.(decodedRecord).rev == e.Rev {
		return d.(decodedRecord).rec, nil
	}
	var rec record
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return rec, fmt.Errorf("accounts: decode %s: %w", e.Key, err)
	}
	s.decoded.Store(e.Key, decodedRecord{rev: e.Rev, rec: rec})
	return rec, nil
}

func (s *Store) view(rec record) api.StorageAccount {
	ep := s.ep()
	return api.StorageAccount{
		Name: rec.Name, Tenant: rec.Tenant, CreatedAt: rec.CreatedAt,
		Endpoints: map[string]string{
			"blob": ep.Blob + "/" + rec.Name, "queue": ep.Queue + "/" + rec.Name, "table": ep.Table + "/" + rec.Name,
		},
	}
}

func (s *Store) keysView(rec record) api.StorageAccountKeys {
	ep := s.ep()
	return api.StorageAccountKeys{
		Name: rec.Name, Key1: rec.Key1, Key2: rec.Key2,
		ConnectionString: fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s/%s;QueueEndpoint=%s/%s;TableEndpoint=%s/%s;",
			rec.Name, rec.Key1, ep.Blob, rec.Name, ep.Queue, rec.Name, ep.Table, rec.Name),
	}
}

// newKey is 64 random bytes, the size of Azure's account keys.
func newKey() string {
	b := make([]byte, 64)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
