// Package tenants keeps the hoster's customers in the controller's
// replicated state: tenants with their quotas and public ports, the API
// tokens that act for a tenant (or for the operator), and one-time portal
// sign-in links.
//
// Tokens are stored as hashes: a token is "wft_ID_SECRET", and the state
// holds ID, tenant, role, expiry and the SHA-256 of the whole token (the
// secret is 256 random bits, so a plain hash is enough: there is nothing
// to guess). Every server authenticates against its own copy of the state,
// so a revocation applies on each server as it applies the Raft entry.
package tenants

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Kinds of the state this package keeps.
const (
	KindTenants = "tenants"
	KindTokens  = "tokens"
	KindSignIn  = "signin" // one-time sign-in codes, by the hash of the code
)

// Lifetimes of what sign-in makes.
const (
	SignInLinkLifetime = 24 * time.Hour
	SessionLifetime    = 12 * time.Hour
)

// MaxTokenLifetime bounds --expires: a token must be renewed at least yearly.
const MaxTokenLifetime = 366 * 24 * time.Hour

// Store reads and changes tenants and tokens in the state.
type Store struct {
	st       state.Store
	defaults api.Quota
	now      func() time.Time
}

// New returns the store; defaults is the quota of a tenant created
// without one.
func New(st state.Store, defaults api.Quota) *Store {
	return &Store{st: st, defaults: defaults, now: func() time.Time { return time.Now().UTC() }}
}

// DefaultQuota is a new tenant's quota unless the operator says otherwise.
func DefaultQuota() api.Quota {
	cpu, mem, inst, vms := 8.0, api.Bytes(16<<30), 20, 5
	disk, storage, eps := api.Bytes(200<<30), api.Bytes(100<<30), 5
	return api.Quota{CPU: &cpu, Memory: &mem, Instances: &inst, VMs: &vms, Disk: &disk, Storage: &storage, Endpoints: &eps}
}

type tenantRecord struct {
	Name      string        `json:"name"`
	Quota     api.Quota     `json:"quota"`
	Ports     api.PortRange `json:"ports,omitzero"`
	CreatedAt time.Time     `json:"createdAt"`
}

func (r tenantRecord) view() api.Tenant {
	return api.Tenant{Name: r.Name, Quota: r.Quota, Ports: r.Ports, CreatedAt: r.CreatedAt}
}

type tokenRecord struct {
	api.Token
	Hash string `json:"hash"` // hex SHA-256 of the whole token
}

type signInRecord struct {
	Tenant  string    `json:"tenant,omitempty"`
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
	By      string    `json:"by"`
}

// EnsureDefault makes the default tenant, without quotas, if it is missing:
// what the operator deploys without naming a tenant belongs to it.
func (s *Store) EnsureDefault(ctx context.Context) error {
	if _, ok := s.st.Get(KindTenants, api.DefaultTenant); ok {
		return nil
	}
	rec := tenantRecord{Name: api.DefaultTenant, CreatedAt: s.now()}
	_, err := s.st.Apply(ctx, []state.Op{{Kind: KindTenants, Key: rec.Name, Check: true}, put(KindTenants, rec.Name, rec)})
	if err != nil && !errors.Is(err, state.ErrConflict) {
		return fmt.Errorf("tenants: make the default tenant: %w", err)
	}
	return nil
}

// Create makes a tenant.
func (s *Store) Create(ctx context.Context, req api.CreateTenant) (api.Tenant, error) {
	if err := api.ValidateTenantName(req.Name); err != nil {
		return api.Tenant{}, err
	}
	if err := validPorts(req.Ports); err != nil {
		return api.Tenant{}, err
	}
	rec := tenantRecord{Name: req.Name, Quota: s.defaults, Ports: req.Ports, CreatedAt: s.now()}
	switch {
	case req.Quota != nil && req.QuotaChanges != nil:
		return api.Tenant{}, api.Errorf(api.CodeInvalid, "give quota (the whole quota) or quotaChanges (changes to the defaults), not both")
	case req.Quota != nil:
		if err := validQuota(*req.Quota); err != nil {
			return api.Tenant{}, err
		}
		rec.Quota = *req.Quota
	case req.QuotaChanges != nil:
		if req.QuotaChanges.Ports != nil {
			return api.Tenant{}, api.Errorf(api.CodeInvalid, "quotaChanges: give the tenant's ports in ports")
		}
		if err := changeQuota(&rec.Quota, *req.QuotaChanges); err != nil {
			return api.Tenant{}, err
		}
	}
	if owner, ok := s.portsOwner(req.Ports, req.Name); ok {
		return api.Tenant{}, api.Errorf(api.CodeConflict, "ports: %s overlaps the ports of tenant %s", req.Ports, owner)
	}
	_, err := s.st.Apply(ctx, []state.Op{{Kind: KindTenants, Key: rec.Name, Check: true}, put(KindTenants, rec.Name, rec)})
	if errors.Is(err, state.ErrConflict) {
		return api.Tenant{}, api.Errorf(api.CodeConflict, "tenant %s already exists", req.Name)
	}
	if err != nil {
		return api.Tenant{}, fmt.Errorf("tenants: create %s: %w", req.Name, err)
	}
	return rec.view(), nil
}

// portsOwner names another tenant whose ports overlap r.
func (s *Store) portsOwner(r api.PortRange, self string) (string, bool) {
	if r.From == 0 {
		return "", false
	}
	for _, t := range s.records() {
		if t.Name != self && t.Ports.From != 0 && t.Ports.From <= r.To && r.From <= t.Ports.To {
			return t.Name, true
		}
	}
	return "", false
}

func validPorts(r api.PortRange) error {
	switch {
	case r == api.PortRange{}:
		return nil
	case r.From < 1 || r.To > 65535 || r.From > r.To:
		return api.Errorf(api.CodeInvalid, "ports: %d-%d is not a range of ports (1-65535, from <= to)", r.From, r.To)
	}
	return nil
}

func validQuota(q api.Quota) error {
	var bad []string
	if q.CPU != nil && *q.CPU < 0 {
		bad = append(bad, "cpu")
	}
	for name, b := range map[string]*api.Bytes{"memory": q.Memory, "disk": q.Disk, "storage": q.Storage} {
		if b != nil && *b < 0 {
			bad = append(bad, name)
		}
	}
	for name, n := range map[string]*int{"instances": q.Instances, "vms": q.VMs, "endpoints": q.Endpoints} {
		if n != nil && *n < 0 {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return api.Errorf(api.CodeInvalid, "quota: %s must not be negative", strings.Join(bad, ", "))
	}
	return nil
}

// changeQuota applies req's limits and unlimited names (not its ports) to q.
func changeQuota(q *api.Quota, req api.SetQuota) error {
	if err := validQuota(req.Quota); err != nil {
		return err
	}
	setIf(&q.CPU, req.CPU)
	setIf(&q.Memory, req.Memory)
	setIf(&q.Instances, req.Instances)
	setIf(&q.VMs, req.VMs)
	setIf(&q.Disk, req.Disk)
	setIf(&q.Storage, req.Storage)
	setIf(&q.Endpoints, req.Endpoints)
	for _, f := range req.Unlimited {
		switch f {
		case "cpu":
			q.CPU = nil
		case "memory":
			q.Memory = nil
		case "instances":
			q.Instances = nil
		case "vms":
			q.VMs = nil
		case "disk":
			q.Disk = nil
		case "storage":
			q.Storage = nil
		case "endpoints":
			q.Endpoints = nil
		default:
			return api.Errorf(api.CodeInvalid, "unlimited: %q is not a quota (cpu, memory, instances, vms, disk, storage, endpoints)", f)
		}
	}
	return nil
}

// Get returns a tenant (without Used, which the caller counts).
func (s *Store) Get(name string) (api.Tenant, error) {
	rec, ok := s.record(name)
	if !ok {
		return api.Tenant{}, api.Errorf(api.CodeNotFound, "no tenant named %s", name)
	}
	return rec.view(), nil
}

// Exists reports whether a tenant of that name exists.
func (s *Store) Exists(name string) bool {
	_, ok := s.record(name)
	return ok
}

// List returns every tenant, by name.
func (s *Store) List() []api.Tenant {
	recs := s.records()
	out := make([]api.Tenant, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.view())
	}
	return out
}

// SetQuota changes a tenant's quota and ports.
func (s *Store) SetQuota(ctx context.Context, name string, req api.SetQuota) (api.Tenant, error) {
	e, ok := s.st.Get(KindTenants, name)
	if !ok {
		return api.Tenant{}, api.Errorf(api.CodeNotFound, "no tenant named %s", name)
	}
	var rec tenantRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return api.Tenant{}, fmt.Errorf("tenants: %s: %w", name, err)
	}
	if err := changeQuota(&rec.Quota, req); err != nil {
		return api.Tenant{}, err
	}
	if req.Ports != nil {
		if err := validPorts(*req.Ports); err != nil {
			return api.Tenant{}, err
		}
		if owner, ok := s.portsOwner(*req.Ports, name); ok {
			return api.Tenant{}, api.Errorf(api.CodeConflict, "ports: %s overlaps the ports of tenant %s", *req.Ports, owner)
		}
		rec.Ports = *req.Ports
	}
	_, err := s.st.Apply(ctx, []state.Op{{Kind: KindTenants, Key: name, Check: true, Rev: e.Rev}, put(KindTenants, name, rec)})
	if errors.Is(err, state.ErrConflict) {
		return api.Tenant{}, api.Errorf(api.CodeConflict, "tenant %s changed meanwhile; try again", name)
	}
	if err != nil {
		return api.Tenant{}, fmt.Errorf("tenants: set quota of %s: %w", name, err)
	}
	return rec.view(), nil
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		c := *v
		*dst = &c
	}
}

// Delete forgets a tenant and its tokens. owned names what the tenant
// still owns; a tenant that owns anything is not deleted (409), so no
// object is left without an owner.
func (s *Store) Delete(ctx context.Context, name string, owned []string) (api.Tenant, error) {
	e, ok := s.st.Get(KindTenants, name)
	if !ok {
		return api.Tenant{}, api.Errorf(api.CodeNotFound, "no tenant named %s", name)
	}
	if name == api.DefaultTenant {
		return api.Tenant{}, api.Errorf(api.CodeInvalid, "name: the %s tenant holds what the operator deploys and cannot be deleted", name)
	}
	if len(owned) > 0 {
		return api.Tenant{}, api.Errorf(api.CodeConflict, "tenant %s still owns %s: delete them first", name, strings.Join(owned, ", "))
	}
	var rec tenantRecord
	_ = json.Unmarshal(e.Value, &rec)
	ops := []state.Op{{Kind: KindTenants, Key: name, Check: true, Rev: e.Rev}, {Kind: KindTenants, Key: name, Delete: true}}
	for _, t := range s.tokenRecords() {
		if t.Tenant == name {
			ops = append(ops, state.Op{Kind: KindTokens, Key: t.ID, Delete: true})
		}
	}
	if _, err := s.st.Apply(ctx, ops); err != nil {
		if errors.Is(err, state.ErrConflict) {
			return api.Tenant{}, api.Errorf(api.CodeConflict, "tenant %s changed meanwhile; try again", name)
		}
		return api.Tenant{}, fmt.Errorf("tenants: delete %s: %w", name, err)
	}
	return rec.view(), nil
}

// record reads a tenant. The default tenant exists, without quotas, even
// before EnsureDefault stores it (on a new cluster's first leader).
func (s *Store) record(name string) (tenantRecord, bool) {
	var rec tenantRecord
	e, ok := s.st.Get(KindTenants, name)
	if !ok && name == api.DefaultTenant {
		return tenantRecord{Name: name}, true
	}
	if !ok || json.Unmarshal(e.Value, &rec) != nil {
		return rec, false
	}
	return rec, true
}

func (s *Store) records() []tenantRecord {
	var out []tenantRecord
	for _, e := range s.st.List(KindTenants, "") {
		var rec tenantRecord
		if json.Unmarshal(e.Value, &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// CreateToken makes a token for a tenant (owner, contributor or reader)
// or, with no tenant, for the operator. by names its creator.
func (s *Store) CreateToken(ctx context.Context, req api.CreateToken, by string) (api.NewToken, error) {
	life := api.DefaultTokenLifetime
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return api.NewToken{}, api.Errorf(api.CodeInvalid, "expires: %q is not a positive duration (e.g. 720h)", req.Expires)
		}
		if d > MaxTokenLifetime {
			return api.NewToken{}, api.Errorf(api.CodeInvalid, "expires: %s is longer than a token may live (%s)", d, MaxTokenLifetime)
		}
		life = d
	}
	if err := s.validGrant(req.Tenant, req.Role); err != nil {
		return api.NewToken{}, err
	}
	if len(req.Description) > 200 {
		return api.NewToken{}, api.Errorf(api.CodeInvalid, "description: at most 200 bytes")
	}
	return s.mint(ctx, req.Tenant, req.Role, req.Description, life, by, nil)
}

// validGrant checks a tenant and role pair a token or link would carry.
func (s *Store) validGrant(tenant, role string) error {
	switch role {
	case api.AccessOwner, api.AccessContributor, api.AccessReader:
		if tenant == "" {
			return api.Errorf(api.CodeInvalid, "tenant: a %s token belongs to a tenant (--tenant NAME)", role)
		}
		if !s.Exists(tenant) {
			return api.Errorf(api.CodeNotFound, "no tenant named %s", tenant)
		}
	case api.AccessOperator:
		if tenant != "" {
			return api.Errorf(api.CodeInvalid, "tenant: operator tokens act for every tenant; leave --tenant out")
		}
	default:
		return api.Errorf(api.CodeInvalid, "role: %q is not a role (owner, contributor, reader, operator)", role)
	}
	return nil
}

// mint stores a new token, with extra ops in the same batch.
func (s *Store) mint(ctx context.Context, tenant, role, desc string, life time.Duration, by string, extra []state.Op) (api.NewToken, error) {
	id, secret := newID(), newSecret()
	tok := "wft_" + id + "_" + secret
	now := s.now()
	rec := tokenRecord{
		Token: api.Token{ID: id, Tenant: tenant, Role: role, Description: desc, Expires: now.Add(life), CreatedAt: now, CreatedBy: by},
		Hash:  hash(tok),
	}
	ops := append(extra, state.Op{Kind: KindTokens, Key: id, Check: true}, put(KindTokens, id, rec))
	if tenant != "" {
		// The tenant must still exist when the token is stored.
		e, ok := s.st.Get(KindTenants, tenant)
		if !ok {
			return api.NewToken{}, api.Errorf(api.CodeNotFound, "no tenant named %s", tenant)
		}
		ops = append(ops, state.Op{Kind: KindTenants, Key: tenant, Check: true, Rev: e.Rev})
	}
	if _, err := s.st.Apply(ctx, ops); err != nil {
		if errors.Is(err, state.ErrConflict) {
			return api.NewToken{}, api.Errorf(api.CodeConflict, "the tenant or the link changed meanwhile; try again")
		}
		return api.NewToken{}, fmt.Errorf("tenants: store token: %w", err)
	}
	return api.NewToken{Token: tok, ID: id, Tenant: tenant, Role: role, Expires: rec.Expires}, nil
}

// Tokens lists the tokens of a tenant, or with tenant "*" every token
// (operator tokens have tenant "").
func (s *Store) Tokens(tenant string) []api.Token {
	out := []api.Token{}
	for _, t := range s.tokenRecords() {
		if tenant == "*" || t.Tenant == tenant {
			out = append(out, t.Token)
		}
	}
	return out
}

// Token returns one token's record.
func (s *Store) Token(id string) (api.Token, bool) {
	var rec tokenRecord
	e, ok := s.st.Get(KindTokens, id)
	if !ok || json.Unmarshal(e.Value, &rec) != nil {
		return api.Token{}, false
	}
	return rec.Token, true
}

// Revoke deletes a token: every server refuses it once it applies this.
func (s *Store) Revoke(ctx context.Context, id string) (api.Token, error) {
	t, ok := s.Token(id)
	if !ok {
		return api.Token{}, api.Errorf(api.CodeNotFound, "no token %s", id)
	}
	if _, err := s.st.Apply(ctx, []state.Op{{Kind: KindTokens, Key: id, Delete: true}}); err != nil {
		return api.Token{}, fmt.Errorf("tenants: revoke %s: %w", id, err)
	}
	return t, nil
}

func (s *Store) tokenRecords() []tokenRecord {
	var out []tokenRecord
	for _, e := range s.st.List(KindTokens, "") {
		var rec tokenRecord
		if json.Unmarshal(e.Value, &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// IsToken reports whether s has the shape of the tokens this package makes.
func IsToken(s string) bool { return strings.HasPrefix(s, "wft_") }

// Authenticate returns the token's record when tok is a live token: known,
// its hash matching, not expired, and its tenant (if any) still there.
func (s *Store) Authenticate(tok string) (api.Token, bool) {
	rest, ok := strings.CutPrefix(tok, "wft_")
	if !ok {
		return api.Token{}, false
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || id == "" {
		return api.Token{}, false
	}
	var rec tokenRecord
	e, found := s.st.Get(KindTokens, id)
	if !found || json.Unmarshal(e.Value, &rec) != nil {
		return api.Token{}, false
	}
	if subtle.ConstantTimeCompare([]byte(rec.Hash), []byte(hash(tok))) != 1 {
		return api.Token{}, false
	}
	return s.current(rec)
}

// Current returns the token with this ID while it may still be used: not
// revoked, not expired, its tenant not deleted. A server that a follower
// forwards a request to checks the caller's token again with it, so that a
// token revoked on this server is refused here even by a follower that has
// not applied the revocation yet.
func (s *Store) Current(id string) (api.Token, bool) {
	var rec tokenRecord
	e, found := s.st.Get(KindTokens, id)
	if !found || json.Unmarshal(e.Value, &rec) != nil {
		return api.Token{}, false
	}
	return s.current(rec)
}

func (s *Store) current(rec tokenRecord) (api.Token, bool) {
	if !s.now().Before(rec.Expires) {
		return api.Token{}, false
	}
	if rec.Tenant != "" && !s.Exists(rec.Tenant) {
		return api.Token{}, false
	}
	return rec.Token, true
}

// CreateSignInLink makes a one-time code that signs in to the portal as a
// new token of tenant and role; portal is the portal's base URL.
func (s *Store) CreateSignInLink(ctx context.Context, req api.CreateSignInLink, portal, by string) (api.SignInLink, error) {
	if err := s.validGrant(req.Tenant, req.Role); err != nil {
		return api.SignInLink{}, err
	}
	code := newSecret()
	rec := signInRecord{Tenant: req.Tenant, Role: req.Role, Expires: s.now().Add(SignInLinkLifetime), By: by}
	if _, err := s.st.Apply(ctx, []state.Op{put(KindSignIn, hash(code), rec)}); err != nil {
		return api.SignInLink{}, fmt.Errorf("tenants: store sign-in link: %w", err)
	}
	return api.SignInLink{URL: strings.TrimSuffix(portal, "/") + "/signin/" + code, Code: code, Tenant: req.Tenant, Role: req.Role, Expires: rec.Expires}, nil
}

// Redeem trades a sign-in code for a new session token, once: the code is
// deleted in the batch that stores the token, so of two redeems at once
// one fails.
func (s *Store) Redeem(ctx context.Context, code string) (api.NewToken, error) {
	if code == "" {
		return api.NewToken{}, api.Errorf(api.CodeInvalid, "code: the sign-in link's code is required")
	}
	invalid := api.Errorf(api.CodeUnauthorized, "this sign-in link is not valid: it was used, expired or never made; ask for a new one")
	key := hash(code)
	e, ok := s.st.Get(KindSignIn, key)
	if !ok {
		return api.NewToken{}, invalid
	}
	var rec signInRecord
	if json.Unmarshal(e.Value, &rec) != nil || !s.now().Before(rec.Expires) {
		return api.NewToken{}, invalid
	}
	tok, err := s.mint(ctx, rec.Tenant, rec.Role, "portal sign-in", SessionLifetime, rec.By,
		[]state.Op{{Kind: KindSignIn, Key: key, Check: true, Rev: e.Rev}, {Kind: KindSignIn, Key: key, Delete: true}})
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Code == api.CodeConflict {
		return api.NewToken{}, invalid
	}
	return tok, err
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func put(kind, key string, v any) state.Op {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("tenants: marshal %s/%s: %v", kind, key, err))
	}
	return state.Op{Kind: kind, Key: key, Value: data}
}
