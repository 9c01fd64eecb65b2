package state

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTableMatchesMap checks the sorted key slice against a plain map
// through a long pseudo-random mix of inserts, overwrites and deletes.
func TestTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb := newTable()
	ref := make(map[string]uint64)
	for i := range 20000 {
		key := fmt.Sprintf("%c/%d", 'a'+rng.IntN(4), rng.IntN(3000))
		if rng.IntN(3) == 0 {
			tb.delete(key)
			delete(ref, key)
		} else {
			tb.put(Entry{Kind: "k", Key: key, Rev: uint64(i)})
			ref[key] = uint64(i)
		}
	}
	for _, prefix := range []string{"", "a", "b/", "c/1", "d/29", "e"} {
		var want []string
		for k := range ref {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		var got []string
		for _, e := range tb.list(prefix) {
			got = append(got, e.Key)
			if e.Rev != ref[e.Key] {
				t.Fatalf("%s: rev %d, want %d", e.Key, e.Rev, ref[e.Key])
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("list(%q) (-want +got):\n%s", prefix, diff)
		}
	}
}
