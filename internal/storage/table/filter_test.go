package table

import (
	"math"
	"strings"
	"testing"
	"time"
)

func testEntity() *entity {
	ts := timeToTicks(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC))
	e := &entity{pk: "p1", rk: "r1", ts: ts}
	e.merge(&entity{props: []property{
		{"Name", value{kind: edmString, s: "O'Brien"}},
		{"Age", value{kind: edmInt32, i: 42}},
		{"Big", value{kind: edmInt64, i: 1 << 40}},
		{"Price", value{kind: edmDouble, f: 9.5}},
		{"Nan", value{kind: edmDouble, f: math.NaN()}},
		{"Active", boolValue(true)},
		{"Off", boolValue(false)},
		{"When", value{kind: edmDateTime, i: timeToTicks(time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC))}},
		{"ID", value{kind: edmGUID, s: "0F8FAD5B-D9CB-469F-A165-70867728950E"}},
		{"Blob", value{kind: edmBinary, s: "\x01\xff"}},
	}})
	return e
}

func TestFilterEval(t *testing.T) {
	e := testEntity()
	tests := []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"PartitionKey eq 'p1'", true},
		{"PartitionKey eq 'p2'", false},
		{"PartitionKey eq 'p1' and RowKey eq 'r1'", true},
		{"PartitionKey eq 'p1' and RowKey eq 'r2'", false},
		{"PartitionKey eq 'p2' or RowKey eq 'r1'", true},
		{"Name eq 'O''Brien'", true},
		{"Name gt 'A' and Name lt 'Z'", true},
		{"Age eq 42", true},
		{"Age gt 41 and Age lt 43", true},
		{"Age ge 42 and Age le 42", true},
		{"Age ne 42", false},
		{"Age eq 42L", true},
		{"Age lt 42.5", true},
		{"42 eq Age", true},
		{"40 lt Age", true},
		{"Big eq 1099511627776L", true},
		{"Big gt 5", true},
		{"Price eq 9.5", true},
		{"Price gt 9", true},
		{"Price le 9.4", false},
		{"Price eq 9.5d", true},
		{"Nan eq 1.0", false},
		{"Nan ne 1.0", true},
		{"Active eq true", true},
		{"Active", true},
		{"Off", false},
		{"not Off", true},
		{"not Active", false},
		{"Active and not Off", true},
		{"When eq datetime'2020-01-02T03:04:05.0000006Z'", true},
		{"When gt datetime'2020-01-01T00:00:00Z'", true},
		{"When lt datetime'2020-01-01T00:00:00Z'", false},
		{"Timestamp eq datetime'2024-05-06T07:08:09Z'", true},
		{"ID eq guid'0f8fad5b-d9cb-469f-a165-70867728950e'", true},
		{"ID ne guid'00000000-0000-0000-0000-000000000000'", true},
		{"Blob eq X'01ff'", true},
		{"Blob eq binary'01FF'", true},
		{"Blob eq X'01'", false},
		{"Blob gt X'01'", true},
		// Type mismatches and missing properties are false, not errors.
		{"Age eq '42'", false},
		{"Name eq 42", false},
		{"Missing eq 'x'", false},
		{"Missing ne 'x'", false},
		{"Active eq 1", false},
		{"ID eq 'x'", false},
		// Precedence: and binds tighter than or; not tighter than both.
		{"PartitionKey eq 'x' and RowKey eq 'x' or Age eq 42", true},
		{"Age eq 42 or PartitionKey eq 'x' and RowKey eq 'x'", true},
		{"(Age eq 42 or PartitionKey eq 'x') and RowKey eq 'x'", false},
		{"not (Age eq 42) or Active", true},
		{"not (Age eq 42 and Active)", false},
		{"not not Active", true},
		{"((((Age eq 42))))", true},
		{"Age EQ 42 AND Active", true},
		{"Age eq -1 or Age gt -100", true},
	}
	for _, tt := range tests {
		n, err := parseFilter(tt.filter)
		if err != nil {
			t.Errorf("parseFilter(%q): %v", tt.filter, err)
			continue
		}
		if got := match(n, e); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestFilterParseErrors(t *testing.T) {
	bad := []string{
		"PartitionKey eq",
		"eq 'a'",
		"PartitionKey eq 'a",
		"(PartitionKey eq 'a'",
		"PartitionKey eq 'a')",
		"PartitionKey eq 'a' and",
		"PartitionKey eq 'a' 'b'",
		"Age eq 12x",
		"Age eq 1.5L",
		"When eq datetime'yesterday'",
		"ID eq guid'nope'",
		"Blob eq X'0g'",
		"Age eq 5 # 3",
		"not",
		"and",
		"PartitionKey eq 'a' or or Age eq 1",
		strings.Repeat("(", 500) + "Active" + strings.Repeat(")", 500),
	}
	for _, f := range bad {
		if _, err := parseFilter(f); err == nil {
			t.Errorf("parseFilter(%q) succeeded, want an error", f)
		}
	}
}

func TestPlanRange(t *testing.T) {
	tests := []struct {
		filter string
		lo, hi string
		noHi   bool
	}{
		{filter: "", noHi: true},
		{filter: "PartitionKey eq 'a'", lo: "a\x00", hi: "a\x01"},
		{filter: "'a' eq PartitionKey", lo: "a\x00", hi: "a\x01"},
		{filter: "PartitionKey ge 'b' and PartitionKey lt 'd'", lo: "b", hi: "d"},
		{filter: "PartitionKey gt 'b'", lo: "b\x01", noHi: true},
		{filter: "PartitionKey le 'b'", hi: "b\x01"},
		{filter: "PartitionKey eq 'a' and RowKey ge 'm' and RowKey lt 'q'", lo: "a\x00m", hi: "a\x00q"},
		{filter: "PartitionKey eq 'a' and RowKey eq 'm'", lo: "a\x00m", hi: "a\x00m\x00"},
		{filter: "PartitionKey eq 'a' or PartitionKey eq 'c'", lo: "a\x00", hi: "c\x01"},
		{filter: "PartitionKey eq 'a' or Age eq 1", noHi: true},
		{filter: "not (PartitionKey eq 'a')", noHi: true},
		{filter: "Age eq 1 and PartitionKey eq 'a'", lo: "a\x00", hi: "a\x01"},
	}
	for _, tt := range tests {
		n, err := parseFilter(tt.filter)
		if err != nil {
			t.Fatalf("parseFilter(%q): %v", tt.filter, err)
		}
		r := planRange(n)
		if string(r.lo) != tt.lo || (r.hi == nil) != tt.noHi || (!tt.noHi && string(r.hi) != tt.hi) {
			t.Errorf("planRange(%q) = [%q, %q), want [%q, %q) noHi=%v", tt.filter, r.lo, r.hi, tt.lo, tt.hi, tt.noHi)
		}
	}
}

// The planned range must never exclude a match: check it against brute
// force over a small key space.
func TestPlanRangeSound(t *testing.T) {
	keys := []string{"", "a", "a'", "ab", "b", "ba", "c"}
	filters := []string{
		"PartitionKey eq 'a'", "PartitionKey gt 'a'", "PartitionKey ge 'ab'", "PartitionKey lt 'b'",
		"PartitionKey le 'b'", "PartitionKey eq 'a' and RowKey gt 'a'", "PartitionKey eq 'a' and RowKey le 'ab'",
		"PartitionKey eq 'b' and RowKey lt 'b' and RowKey ge ''", "PartitionKey eq 'a' or PartitionKey ge 'ba'",
		"RowKey eq 'a'", "PartitionKey ne 'a'", "PartitionKey eq '' and RowKey eq ''",
	}
	for _, f := range filters {
		n, err := parseFilter(f)
		if err != nil {
			t.Fatal(err)
		}
		r := planRange(n)
		for _, pk := range keys {
			for _, rk := range keys {
				e := &entity{pk: pk, rk: rk}
				k := string(entityKey(pk, rk))
				in := k >= string(r.lo) && (r.hi == nil || k < string(r.hi))
				if match(n, e) && !in {
					t.Errorf("%q: (%q,%q) matches but lies outside [%q, %q)", f, pk, rk, r.lo, r.hi)
				}
			}
		}
	}
}

var fuzzSeeds = []string{
	"PartitionKey eq 'a' and RowKey ge 'b'",
	"not (Age lt 5L) or Name eq 'x''y'",
	"When ge datetime'2020-01-01T00:00:00Z' and ID eq guid'0f8fad5b-d9cb-469f-a165-70867728950e'",
	"Blob eq X'00ff' or Blob eq binary'ab'",
	"Price gt -1.5e3 and Active",
	"((((",
	"'unterminated",
	"eq eq eq",
	"Age eq 99999999999999999999",
	"-",
	".",
	"x'",
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	e := testEntity()
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseFilter(s)
		if err != nil {
			return
		}
		// The planned range never leaves out an entity the filter matches.
		r := planRange(n)
		k := string(entityKey(e.pk, e.rk))
		if match(n, e) && (k < string(r.lo) || r.hi != nil && k >= string(r.hi)) {
			t.Errorf("%q matches (%q, %q), which lies outside the planned [%q, %q)", s, e.pk, e.rk, r.lo, r.hi)
		}
	})
}
