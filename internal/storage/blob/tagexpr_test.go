package blob

import (
	"testing"
)

func TestTagCondition(t *testing.T) {
	tags := map[string]string{"team": "blue", "tier": "2", "empty": ""}
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`"team" = 'blue'`, true},
		{`"team" <> 'blue'`, false},
		{`"absent" <> 'x'`, false}, // a missing key satisfies no comparison
		{`"empty" = ''`, true},
		{`"tier" > '1' AND "tier" < '3'`, true},
		{`"tier" >= '3' OR "team" = 'blue'`, true},
		// AND binds tighter than OR.
		{`"team" = 'red' AND "tier" = '2' OR "team" = 'blue'`, true},
		{`"team" = 'red' AND ("tier" = '2' OR "team" = 'blue')`, false},
		{`("team"='blue')and("tier"<='2')`, true},
	} {
		e, err := parseTagCondition("x-ms-if-tags", tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if got := e.eval(tags); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{``, `"team"`, `"team" = `, `"team" = 'blue`, `team = 'blue'`, `"team" == 'blue'`,
		`("team" = 'blue'`, `"team" = 'blue' AND`, `@container = 'box'`, `"bad*key" = 'x'`, `"team" = 'blue' extra`} {
		if _, err := parseTagCondition("x-ms-if-tags", bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// FuzzTagExpr parses any text as an x-ms-if-tags condition and as a Find
// Blobs by Tags where. Properties: no panic; a refusal is 400 with the
// header's or the query's code; an accepted where has a tag term to drive
// the index scan, and evaluating either never panics.
func FuzzTagExpr(f *testing.F) {
	f.Add(`"team" = 'blue' AND "tier" >= '1'`)
	f.Add(`"a" = 'b' OR ("c" < 'd' AND "e" <> '')`)
	f.Add(`"project" = 'alpha' AND @container = 'box'`)
	f.Add(`(((`)
	f.Add(`"a" = 'b' AND`)
	f.Fuzz(func(t *testing.T, s string) {
		tags := map[string]string{"a": "b", "team": "blue"}
		if e, err := parseTagCondition("x-ms-if-tags", s); err != nil {
			checkXMLRefusal(t, err, "InvalidHeaderValue")
		} else {
			e.eval(tags)
		}
		terms, err := parseTagQuery(s)
		if err != nil {
			checkXMLRefusal(t, err, "InvalidQueryParameterValue")
			return
		}
		var rest []tagTerm
		for _, term := range terms {
			if term.key != "@container" {
				rest = append(rest, term)
			}
			term.eval(tags)
		}
		if len(rest) == 0 {
			t.Fatalf("%q: accepted without a tag term", s)
		}
		planTagScan("acct", "", rest)
	})
}
