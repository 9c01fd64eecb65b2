package table

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// andChain is a filter of n comparisons joined by and, on the partition
// and row keys so the planner has work to do at every term.
func andChain(n int) string {
	terms := make([]string, n)
	for i := range terms {
		if i%2 == 0 {
			terms[i] = "PartitionKey eq 'p'"
		} else {
			terms[i] = fmt.Sprintf("RowKey ge 'r%d'", i)
		}
	}
	return strings.Join(terms, " and ")
}

// TestFilterLimits: a filter up to the caps parses; one term or byte more
// is refused, and a filter of 20,000 terms is refused at once, through the
// SDK as 400 InvalidInput.
func TestFilterLimits(t *testing.T) {
	if _, err := parseFilter(andChain(maxFilterTerms)); err != nil {
		t.Errorf("%d terms: %v", maxFilterTerms, err)
	}
	// Bare Boolean operands and negations count as terms; parenthesised
	// groups do not count twice.
	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{strings.Repeat("(Active) and ", maxFilterTerms-1) + "(A eq 1)", true},
		{strings.Repeat("not Active and ", maxFilterTerms) + "Active", false},
		{andChain(maxFilterTerms + 1), false},
		{"Name eq '" + strings.Repeat("x", maxFilterLength) + "'", false},
	} {
		_, err := parseFilter(tc.filter)
		if (err == nil) != tc.ok {
			t.Errorf("parseFilter(%.60q...) = %v, want ok=%v", tc.filter, err, tc.ok)
		}
	}

	env := newEnv(t)
	tc := env.table(t, "limits")
	if _, err := tc.AddEntity(context.Background(), mustJSON(t, map[string]any{"PartitionKey": "p", "RowKey": "r"}), nil); err != nil {
		t.Fatal(err)
	}
	// Each cap on its own: 20,000 short terms are over both.
	for name, filter := range map[string]string{
		"20,000 terms": strings.Repeat("A eq 1 and ", 19_999) + "A eq 1",
		"101 terms":    andChain(maxFilterTerms + 1),
		"long filter":  "A eq '" + strings.Repeat("x", maxFilterLength) + "'",
	} {
		start := time.Now()
		p := tc.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
		_, err := p.NextPage(context.Background())
		wantCode(t, err, http.StatusBadRequest, "InvalidInput")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refused after %v", name, d)
		}
	}
}

// TestPlanRangeLinear plans a chain of 20,000 ands built directly (the
// parser refuses such a filter): once per node, it takes milliseconds;
// planned at every and node, as before, it took about 10 s.
func TestPlanRangeLinear(t *testing.T) {
	n := &node{op: opCmp, cmp: cmpEq, a: &node{op: opProp, prop: "PartitionKey"}, b: &node{op: opLit, lit: value{kind: edmString, s: "p"}}}
	for i := range 20_000 {
		term := &node{op: opCmp, cmp: cmpGe, a: &node{op: opProp, prop: "RowKey"}, b: &node{op: opLit, lit: value{kind: edmString, s: fmt.Sprint("r", i)}}}
		n = &node{op: opAnd, left: n, right: term}
	}
	start := time.Now()
	r := planRange(n)
	if d := time.Since(start); d > time.Second {
		t.Errorf("planning 20,000 terms took %v", d)
	}
	if want := "p\x00r9999"; string(r.lo) != want || string(r.hi) != "p\x01" {
		t.Errorf("planRange = [%q, %q), want [%q, %q)", r.lo, r.hi, want, "p\x01")
	}
}

// BenchmarkPlanRange plans and chains of growing length up to the cap: the
// time per term stays flat (linear planning).
func BenchmarkPlanRange(b *testing.B) {
	for _, terms := range []int{10, 25, 50, 100} {
		n, err := parseFilter(andChain(terms))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("terms=%d", terms), func(b *testing.B) {
			for b.Loop() {
				planRange(n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(terms), "ns/term")
		})
	}
}
