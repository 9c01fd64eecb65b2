package blobquery

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hamba/avro/v2/ocf"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{"SELECT * FROM BlobStorage", true},
		{"select count(*) from blobstorage where _1 = 'a' limit 1;", true},
		{`SELECT "a b", c.d.e, _12 FROM BlobStorage WHERE NOT (x < -1.5e3 OR y >= .5) AND z <> 'it''s'`, true},
		{"SELECT * FROM BlobStorage WHERE a = TRUE", true},
		{"", false},
		{"SELECT", false},
		{"SELECT * FROM", false},
		{"SELECT * BlobStorage", false},
		{"SELECT _0 FROM BlobStorage", false},
		{"SELECT COUNT(a) FROM BlobStorage", false},
		{"SELECT a FROM BlobStorage WHERE a", false},
		{"SELECT a FROM BlobStorage WHERE a = ", false},
		{"SELECT a FROM BlobStorage WHERE (a = 1", false},
		{"SELECT a FROM BlobStorage WHERE a IN (1, 2)", false},
		{"SELECT a FROM BlobStorage WHERE a BETWEEN 1 AND 2", false},
		{"SELECT a FROM BlobStorage WHERE a = 1 ORDER BY a", false},
		{"SELECT LOWER(a) FROM BlobStorage", false},
		{"SELECT a FROM BlobStorage b", false},
		{"SELECT a FROM BlobStorage LIMIT -1", false},
		{"SELECT a FROM BlobStorage WHERE a = 'x' ! b", false},
		{"SELECT " + strings.Repeat("a, ", 49) + "a FROM BlobStorage", false},
	} {
		_, err := Parse(tc.expr)
		var se *SyntaxError
		if tc.ok && err != nil || !tc.ok && !errors.As(err, &se) {
			t.Errorf("Parse(%q): %v, want ok=%v", tc.expr, err, tc.ok)
		}
	}
}

// run answers expr over input and returns the result data and the
// names of the error records (with " fatal" for a fatal one).
func run(t *testing.T, expr string, in, out Format, input string) (string, []string, int) {
	t.Helper()
	q, err := Parse(expr)
	if err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	flushes := 0
	req := &Request{Query: q, Input: in, Output: out}
	if err := req.Run(strings.NewReader(input), int64(len(input)), &w, func() { flushes++ }); err != nil {
		t.Fatal(err)
	}
	dec, err := ocf.NewDecoder(&w)
	if err != nil {
		t.Fatal(err)
	}
	var data bytes.Buffer
	var errs []string
	records := 0
	for dec.HasNext() {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		records++
		if d, ok := rec[recData].(map[string]any); ok {
			data.Write(d["data"].([]byte))
		}
		if e, ok := rec[recError].(map[string]any); ok {
			name := e["name"].(string)
			if e["fatal"].(bool) {
				name += " fatal"
			}
			errs = append(errs, name)
		}
	}
	if records != flushes {
		t.Errorf("%d records in %d flushes: each record is flushed as it is made", records, flushes)
	}
	return data.String(), errs, records
}

func TestRun(t *testing.T) {
	csv := defaultFormat()
	headers := csv
	headers.Headers = true
	js := Format{Type: "json", RecordSep: '\n'}
	piped := Format{Type: "delimited", ColumnSep: '|', RecordSep: ';', Escape: '\\'}
	for _, tc := range []struct {
		name, expr string
		in, out    Format
		input      string
		want       string
		errs       []string
	}{
		{"quoted fields in, quoted out", "SELECT * FROM BlobStorage", csv, csv,
			"\"a,b\",\"say \"\"hi\"\"\",c\n", "\"a,b\",\"say \"\"hi\"\"\",c\n", nil},
		{"escapes, other separators", "SELECT _2, _1 FROM BlobStorage", piped, piped,
			`a\|b|c\;d;e|f;`, `c\;d|a\|b;f|e;`, nil},
		{"a header row out", "SELECT y, x FROM BlobStorage WHERE x != '2'", headers, headers,
			"x,y\n1,a\n2,b\n3,c\n", "y,x\na,1\nc,3\n", nil},
		{"numbers compare as numbers", "SELECT _1 FROM BlobStorage WHERE _1 < 10", csv, csv,
			"9\n10\n100\nnan-ish\n", "9\n", nil},
		{"strings compare as strings", "SELECT _1 FROM BlobStorage WHERE _1 < '10'", csv, csv,
			"9\n10\n100\n", "", nil},
		{"COUNT(*) with LIMIT 0 answers nothing", "SELECT COUNT(*) FROM BlobStorage LIMIT 0", csv, csv, "1\n2\n", "", nil},
		{"COUNT(*) as JSON", "SELECT COUNT(*) FROM BlobStorage", csv, js, "1\n2\n", `{"_1":2}` + "\n", nil},
		{"LIMIT stops early", "SELECT * FROM BlobStorage LIMIT 1", csv, csv, "1\n2\n", "1\n", nil},
		{"a name without a header row", "SELECT x FROM BlobStorage", csv, csv, "1\n", "", []string{"InvalidColumnName"}},
		{"a missing JSON field is unknown, and NOT unknown too", "SELECT a FROM BlobStorage WHERE NOT b = 1", js, js,
			`{"a":1}` + "\n" + `{"a":2,"b":2}`, `{"a":2}` + "\n", nil},
		{"unknown OR true is true", "SELECT a FROM BlobStorage WHERE b = 1 OR a = 1", js, js,
			`{"a":1}`, `{"a":1}` + "\n", nil},
		{"JSON values keep their form", "SELECT * FROM BlobStorage", js, js,
			`{"n":1.50,"s":"x\"y","o":{"k":[1, 2]},"z":null}`, `{"n":1.50,"s":"x\"y","o":{"k":[1,2]},"z":null}` + "\n", nil},
		{"JSON that is not records is fatal", "SELECT * FROM BlobStorage", js, js,
			`{"a":1}` + "\n[1]\n" + `{"a":2}`, `{"a":1}` + "\n", []string{"InvalidJsonRecord fatal"}},
		{"a record cut short is fatal", "SELECT * FROM BlobStorage", js, js,
			`{"a":"}`, "", []string{"InvalidJsonRecord fatal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, errs, _ := run(t, tc.expr, tc.in, tc.out, tc.input)
			if got != tc.want || fmt.Sprint(errs) != fmt.Sprint(tc.errs) {
				t.Errorf("got %q, errors %v; want %q, errors %v", got, errs, tc.want, tc.errs)
			}
		})
	}
}

// TestRunLarge: a large answer comes in result data records of at most
// dataChunk bytes, with progress records while the input is scanned, and
// non-fatal errors stop being reported past maxRecordErrors.
func TestRunLarge(t *testing.T) {
	var in strings.Builder
	for i := range 300_000 {
		fmt.Fprintf(&in, "%d,row number %d\n", i, i)
	}
	in.WriteString(strings.Repeat("short\n", maxRecordErrors+10))
	input := in.String()
	got, errs, records := run(t, "SELECT _2 FROM BlobStorage", defaultFormat(), defaultFormat(), input)
	if n := strings.Count(got, "\n"); n != 300_000 {
		t.Errorf("%d rows answered", n)
	}
	if len(errs) != maxRecordErrors {
		t.Errorf("%d errors reported, want %d", len(errs), maxRecordErrors)
	}
	// Data records: at least one per dataChunk; progress: one per
	// progressEvery of input, and the last.
	minRecords := len(got)/(dataChunk+64) + len(input)/progressEvery + maxRecordErrors + 2
	if records < minRecords {
		t.Errorf("%d records for %d bytes out, %d in; want at least %d", records, len(got), len(input), minRecords)
	}
}
