package accounts

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// BenchmarkPageOf100k: one page of 1,000 of every tenant's 100,000
// accounts, against the whole list (what each page cost when pages were
// cut from it).
//
//	go test -run '^$' -bench PageOf100k ./internal/accounts/
func BenchmarkPageOf100k(b *testing.B) {
	s := newStore(b, false)
	ctx := context.Background()
	const n = 100_000
	for i := 0; i < n; i += 1000 {
		var ops []state.Op
		for j := i; j < i+1000; j++ {
			name := fmt.Sprintf("t%04da%04d", j/100, j%100)
			data, _ := json.Marshal(record{Name: name, Tenant: fmt.Sprintf("t%04d", j/100), Key1: "k", Key2: "k", CreatedAt: time.Now()})
			ops = append(ops, state.Op{Kind: state.KindAccounts, Key: name, Value: data},
				state.Op{Kind: kindByTenant, Key: byTenantKey(fmt.Sprintf("t%04d", j/100), name), Value: []byte("{}")})
		}
		if _, err := s.st.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("page", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if page, _ := s.Page(ctx, api.AllTenants, fmt.Sprintf("t%04da0000", i%1000), 1000); len(page) != 1000 {
				b.Fatalf("a page of %d", len(page))
			}
		}
	})
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			if all := s.List(ctx, api.AllTenants); len(all) != n {
				b.Fatalf("a list of %d", len(all))
			}
		}
	})
}
