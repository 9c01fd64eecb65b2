package table

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/google/go-cmp/cmp"
)

func TestTypedRoundTrip(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	tc := env.table(t, "typed")
	when := time.Date(2021, 3, 4, 5, 6, 7, 1234500, time.UTC)
	in := aztables.EDMEntity{
		Entity: aztables.Entity{PartitionKey: "p", RowKey: "r"},
		Properties: map[string]any{
			"Str":    "héllo \"q\"",
			"I32":    int32(-7),
			"I64":    aztables.EDMInt64(1 << 53),
			"Dbl":    3.25,
			"Bool":   true,
			"When":   aztables.EDMDateTime(when),
			"ID":     aztables.EDMGUID("0f8fad5b-d9cb-469f-a165-70867728950e"),
			"Bytes":  aztables.EDMBinary{0, 1, 2, 0xff},
			"NotNum": math.Inf(1),
		},
	}
	// encoding/json cannot write Infinity; send that one typed by hand.
	delete(in.Properties, "NotNum")
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	m["Inf"], m["Inf@odata.type"] = "Infinity", "Edm.Double"
	if _, err := tc.AddEntity(ctx, mustJSON(t, m), nil); err != nil {
		t.Fatal(err)
	}
	resp, err := tc.GetEntity(ctx, "p", "r", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out aztables.EDMEntity
	if err := json.Unmarshal(resp.Value, &out); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	_ = json.Unmarshal(resp.Value, &raw)
	if raw["Inf"] != "Infinity" || raw["Inf@odata.type"] != "Edm.Double" {
		t.Errorf("Inf read back as %v (%v)", raw["Inf"], raw["Inf@odata.type"])
	}
	delete(out.Properties, "Inf")
	if diff := cmp.Diff(in.Properties, out.Properties, cmp.Comparer(func(a, b aztables.EDMDateTime) bool { return time.Time(a).Equal(time.Time(b)) })); diff != "" {
		t.Errorf("properties (-sent +read):\n%s", diff)
	}
	if time.Since(time.Time(out.Timestamp)) > time.Hour || out.ETag == "" {
		t.Errorf("Timestamp %v, etag %q", time.Time(out.Timestamp), out.ETag)
	}
}

// seed inserts entities p0..p2 × r00..r09 with typed properties derived
// from their index.
func seed(t testing.TB, tc *aztables.Client) {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for p := range 3 {
		for r := range 10 {
			n := p*10 + r
			e := aztables.EDMEntity{
				Entity: aztables.Entity{PartitionKey: fmt.Sprintf("p%d", p), RowKey: fmt.Sprintf("r%02d", r)},
				Properties: map[string]any{
					"N":     int32(n),
					"Big":   aztables.EDMInt64(int64(n) << 40),
					"F":     float64(n) + 0.5,
					"Even":  n%2 == 0,
					"When":  aztables.EDMDateTime(base.Add(time.Duration(n) * time.Hour)),
					"ID":    aztables.EDMGUID(fmt.Sprintf("00000000-0000-0000-0000-%012d", n)),
					"Bytes": aztables.EDMBinary{byte(n)},
					"Name":  fmt.Sprintf("name-%02d", n),
				},
			}
			if _, err := tc.AddEntity(ctx, mustJSON(t, e), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func listKeys(t testing.TB, tc *aztables.Client, opts *aztables.ListEntitiesOptions) (keys []string, pages int) {
	t.Helper()
	p := tc.NewListEntitiesPager(opts)
	for p.More() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, raw := range page.Entities {
			var e aztables.EDMEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, e.PartitionKey+"/"+e.RowKey)
		}
	}
	return keys, pages
}

func TestQueryFilter(t *testing.T) {
	env := newEnv(t)
	tc := env.table(t, "query")
	seed(t, tc)
	tests := []struct {
		filter string
		want   []string
	}{
		{"PartitionKey eq 'p1' and RowKey lt 'r03'", []string{"p1/r00", "p1/r01", "p1/r02"}},
		{"PartitionKey eq 'p2' and RowKey ge 'r08'", []string{"p2/r08", "p2/r09"}},
		{"PartitionKey gt 'p1' and RowKey eq 'r00'", []string{"p2/r00"}},
		{"N eq 5", []string{"p0/r05"}},
		{"N ge 28 or N lt 1", []string{"p0/r00", "p2/r08", "p2/r09"}},
		{"Big eq 1099511627776L", []string{"p0/r01"}},
		{"Big gt 30786325577728L", []string{"p2/r09"}},
		{"F eq 12.5", []string{"p1/r02"}},
		{"F lt 1.0", []string{"p0/r00"}},
		{"Even eq true and N lt 5", []string{"p0/r00", "p0/r02", "p0/r04"}},
		{"not Even and N gt 25", []string{"p2/r07", "p2/r09"}},
		{"When eq datetime'2020-01-01T03:00:00Z'", []string{"p0/r03"}},
		{"When ge datetime'2020-01-02T04:00:00Z'", []string{"p2/r08", "p2/r09"}},
		{"ID eq guid'00000000-0000-0000-0000-000000000017'", []string{"p1/r07"}},
		{"Bytes eq X'0b' or Bytes eq binary'0c'", []string{"p1/r01", "p1/r02"}},
		{"Name eq 'name-29'", []string{"p2/r09"}},
		{"(PartitionKey eq 'p0' or PartitionKey eq 'p2') and RowKey eq 'r01'", []string{"p0/r01", "p2/r01"}},
		{"N eq '5'", nil},
		{"Missing eq 1", nil},
	}
	for _, tt := range tests {
		f := tt.filter
		got, _ := listKeys(t, tc, &aztables.ListEntitiesOptions{Filter: &f})
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.filter, diff)
		}
	}
	bad := "N eq"
	p := tc.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &bad})
	_, err := p.NextPage(context.Background())
	wantCode(t, err, 400, "InvalidInput")
}

func TestQueryPagingAndSelect(t *testing.T) {
	env := newEnv(t)
	tc := env.table(t, "paging")
	seed(t, tc)
	top := int32(7)
	keys, pages := listKeys(t, tc, &aztables.ListEntitiesOptions{Top: &top})
	if len(keys) != 30 || pages != 5 {
		t.Fatalf("%d entities in %d pages, want 30 in 5", len(keys), pages)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Fatalf("out of order: %s before %s", keys[i-1], keys[i])
		}
	}
	// Paging inside one partition with a filter.
	f := "PartitionKey eq 'p1' and N ne 15"
	top = 2
	keys, pages = listKeys(t, tc, &aztables.ListEntitiesOptions{Filter: &f, Top: &top})
	if len(keys) != 9 || pages != 5 || keys[0] != "p1/r00" || keys[8] != "p1/r09" {
		t.Errorf("filtered paging: %v in %d pages", keys, pages)
	}

	sel := "RowKey,N,Missing"
	f = "PartitionKey eq 'p0' and RowKey eq 'r03'"
	p := tc.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &f, Select: &sel})
	page, err := p.NextPage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entities) != 1 {
		t.Fatalf("%d entities", len(page.Entities))
	}
	var m map[string]any
	_ = json.Unmarshal(page.Entities[0], &m)
	delete(m, "odata.etag")
	if diff := cmp.Diff(map[string]any{"RowKey": "r03", "N": float64(3)}, m); diff != "" {
		t.Errorf("$select (-want +got):\n%s", diff)
	}

}
