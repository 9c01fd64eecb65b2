package tenants

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := state.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(st, DefaultQuota()), path
}

// TestTokens: a token authenticates as its tenant and role until it
// expires or is revoked; the state holds its hash, never the token.
func TestTokens(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	if _, err := s.Create(ctx, api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	clock := time.Now().UTC()
	s.now = func() time.Time { return clock }
	tok, err := s.CreateToken(ctx, api.CreateToken{Tenant: "acme", Role: api.AccessContributor, Expires: "1h"}, "the operator")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s.Authenticate(tok.Token)
	if !ok || got.Tenant != "acme" || got.Role != api.AccessContributor {
		t.Fatalf("Authenticate = %+v, %v", got, ok)
	}
	for _, bad := range []string{tok.Token + "x", strings.Replace(tok.Token, tok.ID, "aaaaaaaaaaaaaaaa", 1), "wft_", "wft__x", tok.Token[:len(tok.Token)-1]} {
		if _, ok := s.Authenticate(bad); ok {
			t.Errorf("Authenticate(%q) accepted", bad)
		}
	}
	secret := tok.Token[strings.LastIndex(tok.Token, "_")+1:]
	s.st.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret) {
		t.Error("the state file holds the token's secret")
	}
	st, err := state.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s.st = st

	clock = clock.Add(time.Hour)
	if _, ok := s.Authenticate(tok.Token); ok {
		t.Error("an expired token was accepted")
	}
	clock = clock.Add(-time.Minute)
	if _, err := s.Revoke(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Authenticate(tok.Token); ok {
		t.Error("a revoked token was accepted")
	}
	for _, req := range []api.CreateToken{
		{Tenant: "acme", Role: "admin"},
		{Tenant: "nobody", Role: api.AccessOwner},
		{Role: api.AccessOwner},
		{Tenant: "acme", Role: api.AccessOperator},
		{Tenant: "acme", Role: api.AccessOwner, Expires: "-1h"},
		{Tenant: "acme", Role: api.AccessOwner, Expires: "100000h"},
	} {
		if _, err := s.CreateToken(ctx, req, "x"); err == nil {
			t.Errorf("CreateToken(%+v) accepted", req)
		}
	}
}

// TestDeletedTenantsTokensStop: deleting a tenant deletes its tokens, and
// a tenant that still owns something is not deleted.
func TestDeletedTenantsTokensStop(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Create(ctx, api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateToken(ctx, api.CreateToken{Tenant: "acme", Role: api.AccessOwner}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "acme", []string{"1 service"}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("deleting a tenant that owns a service: %v", err)
	}
	if _, err := s.Delete(ctx, "acme", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Authenticate(tok.Token); ok {
		t.Error("a deleted tenant's token was accepted")
	}
	if len(s.Tokens(api.AllTenants)) != 0 {
		t.Error("a deleted tenant's tokens are still listed")
	}
	if err := s.EnsureDefault(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, api.DefaultTenant, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("deleting the default tenant: %v", err)
	}
}

// TestSignInLinkWorksOnce: of two redeems of one link at once, one gets a
// token; the other, and any later one, is refused.
func TestSignInLinkWorksOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Create(ctx, api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	link, err := s.CreateSignInLink(ctx, api.CreateSignInLink{Tenant: "acme", Role: api.AccessOwner}, "http://127.0.0.1:7070/", "the operator")
	if err != nil {
		t.Fatal(err)
	}
	if link.URL != "http://127.0.0.1:7070/signin/"+link.Code {
		t.Errorf("link URL %s", link.URL)
	}
	var wg sync.WaitGroup
	results := make([]error, 8)
	tokens := make([]api.NewToken, 8)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); tokens[i], results[i] = s.Redeem(ctx, link.Code) }()
	}
	wg.Wait()
	won := 0
	for i, err := range results {
		if err == nil {
			won++
			if got, ok := s.Authenticate(tokens[i].Token); !ok || got.Tenant != "acme" || got.Role != api.AccessOwner {
				t.Errorf("the redeemed token: %+v %v", got, ok)
			}
		}
	}
	if won != 1 {
		t.Errorf("%d redeems of one link succeeded, want 1: %v", won, results)
	}
	if _, err := s.Redeem(ctx, link.Code); err == nil {
		t.Error("a used link was redeemed again")
	}
}

// TestQuotaAndPorts: quotas are validated and changed field by field;
// tenants' port ranges do not overlap.
func TestQuotaAndPorts(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.Create(ctx, api.CreateTenant{Name: "acme", Ports: api.PortRange{From: 31000, To: 31009}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, api.CreateTenant{Name: "globex", Ports: api.PortRange{From: 31005, To: 31010}}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("overlapping ports: %v", err)
	}
	mem := api.Bytes(1 << 30)
	got, err := s.SetQuota(ctx, "acme", api.SetQuota{Quota: api.Quota{Memory: &mem}, Unlimited: []string{"cpu"}})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Quota.Memory != mem || got.Quota.CPU != nil || *got.Quota.Instances != *DefaultQuota().Instances {
		t.Errorf("quota after set: %+v", got.Quota)
	}
	neg := -1
	for _, req := range []api.SetQuota{{Quota: api.Quota{VMs: &neg}}, {Unlimited: []string{"gpus"}}, {Ports: &api.PortRange{From: 9, To: 2}}} {
		if _, err := s.SetQuota(ctx, "acme", req); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("SetQuota(%+v) = %v, want invalid", req, err)
		}
	}
	if again, _ := s.Get("acme"); *again.Quota.Memory != mem {
		t.Error("a refused quota change changed the quota")
	}

	// A tenant created with quota changes gets the defaults so changed,
	// in one write; a refused create makes nothing.
	got, err = s.Create(ctx, api.CreateTenant{Name: "initech", QuotaChanges: &api.SetQuota{Quota: api.Quota{Memory: &mem}, Unlimited: []string{"vms"}}})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Quota.Memory != mem || got.Quota.VMs != nil || *got.Quota.Instances != *DefaultQuota().Instances {
		t.Errorf("quota after create with changes: %+v", got.Quota)
	}
	for _, req := range []api.CreateTenant{
		{Name: "hooli", Quota: &api.Quota{}, QuotaChanges: &api.SetQuota{}},
		{Name: "hooli", QuotaChanges: &api.SetQuota{Ports: &api.PortRange{From: 32000, To: 32001}}},
		{Name: "hooli", QuotaChanges: &api.SetQuota{Unlimited: []string{"gpus"}}},
		{Name: "hooli", QuotaChanges: &api.SetQuota{Quota: api.Quota{VMs: &neg}}},
	} {
		if _, err := s.Create(ctx, req); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Create(%+v) = %v, want invalid", req, err)
		}
	}
	if s.Exists("hooli") {
		t.Error("a refused create made the tenant")
	}
}
