package peercopy

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftcloud/weft/internal/state"
)

// A state written back to back (as a large fleet's heartbeats write it)
// runs Keep's rounds keepSpacing apart, not once per write; a change after
// a quiet spell is still copied.
func TestKeepSpacesItsRounds(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var rounds atomic.Int64
	var want atomic.Value
	want.Store("")
	fetched := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Keep(ctx, st, nil, "object", func(context.Context) []string {
			rounds.Add(1)
			if id := want.Load().(string); id != "" {
				return []string{id}
			}
			return nil
		}, func(_ context.Context, id string) error {
			want.Store("")
			fetched <- id
			return nil
		})
	}()

	write := func(i int) {
		if _, err := st.Apply(ctx, []state.Op{{Kind: "things", Key: fmt.Sprint(i), Value: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
	}
	writes := 0
	for began := time.Now(); time.Since(began) < keepSpacing/2; writes++ {
		write(writes)
	}
	// The first round ran at the start, and the next cannot before keepSpacing.
	if n := rounds.Load(); n > 1 || writes < 3 {
		t.Fatalf("%d rounds for %d writes within %s, want 1", n, writes, keepSpacing/2)
	}

	want.Store("abc")
	write(writes)
	select {
	case id := <-fetched:
		if id != "abc" {
			t.Fatalf("fetched %q, want abc", id)
		}
	case <-time.After(10 * keepSpacing):
		t.Fatalf("the object missing after a write was not fetched within %s", 10*keepSpacing)
	}
	cancel()
	<-done
}
