package conformance

// Blob service: Query Blob Contents. The Go SDK does not expose it (its
// generated client has it, unexported); the .NET and JavaScript SDKs do.
// These tests send the QueryRequest as those SDKs do and decode the Avro
// answer with an Avro library, as they do.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/appendblob"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/hamba/avro/v2/ocf"

	"github.com/weftcloud/weft/internal/storage"
)

// queryAnswer is a decoded Query Blob Contents answer.
type queryAnswer struct {
	data     []byte
	errors   []string // "name fatal=true|false position=N"
	progress []int64  // bytesScanned of each progress record
	end      int64    // totalBytes of the end record; -1 without one
}

// decodeQueryAnswer reads the Avro container of a query's answer.
func decodeQueryAnswer(t *testing.T, body []byte) queryAnswer {
	t.Helper()
	dec, err := ocf.NewDecoder(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the answer is no Avro container: %v", err)
	}
	a := queryAnswer{end: -1}
	for dec.HasNext() {
		var rec map[string]any
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		if a.end >= 0 {
			t.Errorf("a record after the end record: %v", rec)
		}
		for kind, v := range rec {
			f, _ := v.(map[string]any)
			switch kind {
			case "com.microsoft.azure.storage.queryBlobContents.resultData":
				a.data = append(a.data, f["data"].([]byte)...)
			case "com.microsoft.azure.storage.queryBlobContents.error":
				a.errors = append(a.errors, fmt.Sprintf("%s fatal=%v position=%d", f["name"], f["fatal"], f["position"]))
			case "com.microsoft.azure.storage.queryBlobContents.progress":
				a.progress = append(a.progress, f["bytesScanned"].(int64))
				if f["totalBytes"].(int64) < f["bytesScanned"].(int64) {
					t.Errorf("progress %v", f)
				}
			case "com.microsoft.azure.storage.queryBlobContents.end":
				a.end = f["totalBytes"].(int64)
			default:
				t.Errorf("unknown record %s", kind)
			}
		}
	}
	if dec.Error() != nil {
		t.Fatal(dec.Error())
	}
	return a
}

// csvSerialization is a DelimitedTextConfiguration.
func csvSerialization(sep, quote, escape string, headers bool) string {
	return fmt.Sprintf("<Format><Type>delimited</Type><DelimitedTextConfiguration><ColumnSeparator>%s</ColumnSeparator>"+
		"<FieldQuote>%s</FieldQuote><RecordSeparator>\n</RecordSeparator><EscapeChar>%s</EscapeChar><HasHeaders>%v</HasHeaders>"+
		"</DelimitedTextConfiguration></Format>", sep, quote, escape, headers)
}

const jsonSerialization = "<Format><Type>json</Type><JsonTextConfiguration><RecordSeparator>\n</RecordSeparator></JsonTextConfiguration></Format>"

// queryRequest is a QueryRequest body; in and out are Format elements ("" leaves the serialization out).
func queryRequest(expr, in, out string) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><QueryRequest><QueryType>SQL</QueryType><Expression>`)
	b.WriteString(strings.NewReplacer("<", "&lt;", ">", "&gt;", "&", "&amp;").Replace(expr))
	b.WriteString("</Expression>")
	if in != "" {
		b.WriteString("<InputSerialization>" + in + "</InputSerialization>")
	}
	if out != "" {
		b.WriteString("<OutputSerialization>" + out + "</OutputSerialization>")
	}
	b.WriteString("</QueryRequest>")
	return []byte(b.String())
}

const booksCSV = "Title,Author,Year,Price\n" +
	"Dune,Herbert,1965,9.99\n" +
	"\"Neuromancer, the novel\",Gibson,1984,7.5\n" +
	"Hyperion,Simmons,1989,12\n" +
	"Foundation,Asimov,1951,8.25\n"

const booksJSON = `{"title":"Dune","author":{"last":"Herbert"},"year":1965,"inPrint":true}
{"title":"Neuromancer","author":{"last":"Gibson"},"year":1984,"inPrint":false}
{"title":"Hyperion","author":{"last":"Simmons"},"year":1989,"inPrint":true}
`

func TestBlob_QueryBlobContents(t *testing.T) {
	cover(t, storage.Blob, "Query Blob Contents")
	env := newBlobEnv(t)
	ctx := context.Background()
	cc := env.container(t, "box")
	env.upload(t, cc, "books.csv", booksCSV, nil)
	env.upload(t, cc, "books.json", booksJSON, nil)
	headers := csvSerialization(",", `"`, "", true)
	query := func(t *testing.T, name string, body []byte, hdr map[string]string) response {
		t.Helper()
		return env.do(t, http.MethodPost, "/box/"+name+"?comp=query", hdr, body)
	}
	answer := func(t *testing.T, name, expr, in, out string) queryAnswer {
		t.Helper()
		r := query(t, name, queryRequest(expr, in, out), nil)
		r.want(t, http.StatusOK, "")
		if ct := r.header.Get("Content-Type"); ct != "avro/binary" {
			t.Errorf("Content-Type %q", ct)
		}
		if r.header.Get("ETag") == "" || r.header.Get("x-ms-blob-type") != "BlockBlob" {
			t.Errorf("blob properties missing: %v", r.header)
		}
		return decodeQueryAnswer(t, r.body)
	}

	t.Run("success", func(t *testing.T) {
		for _, tc := range []struct {
			name, blob, expr, in, out, want string
		}{
			{"SELECT * gives the records back", "books.csv", "SELECT * FROM BlobStorage", csvSerialization(",", `"`, "", false), "",
				booksCSV},
			{"columns by name, WHERE on numbers", "books.csv", "SELECT Title, Year FROM BlobStorage WHERE Year > 1960 AND Price < 10", headers, "",
				"Dune,1965\n\"Neuromancer, the novel\",1984\n"},
			{"ordinals, OR, NOT, strings", "books.csv", "select _2 from BlobStorage where _1 = 'Dune' or not (_3 >= '1960')", headers, "",
				"Herbert\nAsimov\n"},
			{"COUNT(*)", "books.csv", "SELECT COUNT(*) FROM BlobStorage WHERE Price >= 8.25", headers, "", "3\n"},
			{"LIMIT", "books.csv", "SELECT Author FROM BlobStorage LIMIT 2", headers, "", "Herbert\nGibson\n"},
			{"CSV to JSON", "books.csv", "SELECT Title, Price FROM BlobStorage WHERE Author <> 'Gibson' AND Author != 'Simmons'", headers, jsonSerialization,
				`{"Title":"Dune","Price":"9.99"}` + "\n" + `{"Title":"Foundation","Price":"8.25"}` + "\n"},
			{"JSON, nested fields and booleans", "books.json", `SELECT title, author.last FROM BlobStorage WHERE inPrint = true AND year < 1989`, jsonSerialization, jsonSerialization,
				`{"title":"Dune","author.last":"Herbert"}` + "\n"},
			{"JSON to CSV with a header row", "books.json", `SELECT * FROM BlobStorage WHERE "year" = 1984`, jsonSerialization, csvSerialization(";", `'`, "", true),
				"title;author;year;inPrint\nNeuromancer;{\"last\":\"Gibson\"};1984;false\n"},
			{"as the JavaScript SDK writes the request", "books.csv", "SELECT Author FROM BlobStorage WHERE Year < 1960",
				// Its XML writer trims the newline record separator to
				// nothing and writes an empty element for no quote.
				"<Format><Type>delimited</Type><DelimitedTextConfiguration><ColumnSeparator>,</ColumnSeparator><FieldQuote/>" +
					"<RecordSeparator></RecordSeparator><EscapeChar/><HasHeaders>true</HasHeaders></DelimitedTextConfiguration></Format>",
				"<Format><Type>json</Type><JsonTextConfiguration><RecordSeparator></RecordSeparator></JsonTextConfiguration></Format>",
				`{"Author":"Asimov"}` + "\n"},
			{"nothing matches", "books.csv", "SELECT * FROM BlobStorage WHERE Year > 3000;", headers, "", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := answer(t, tc.blob, tc.expr, tc.in, tc.out)
				if string(a.data) != tc.want {
					t.Errorf("data %q, want %q", a.data, tc.want)
				}
				size := int64(len(booksCSV))
				if tc.blob == "books.json" {
					size = int64(len(booksJSON))
				}
				if a.end != size || len(a.errors) != 0 || len(a.progress) == 0 || a.progress[len(a.progress)-1] != size {
					t.Errorf("end %d, progress %v, errors %v; want the end at %d", a.end, a.progress, a.errors, size)
				}
			})
		}
	})
	t.Run("Arrow output", func(t *testing.T) {
		arrow := "<Format><Type>arrow</Type><ArrowConfiguration><Schema>" +
			"<Field><Type>string</Type><Name>title</Name></Field>" +
			"<Field><Type>int64</Type><Name>year</Name></Field>" +
			"<Field><Type>decimal</Type><Name>price</Name><Precision>6</Precision><Scale>2</Scale></Field>" +
			"</Schema></ArrowConfiguration></Format>"
		a := answer(t, "books.csv", "SELECT Title, Year, Price FROM BlobStorage WHERE Year < 1980", headers, arrow)
		rd, err := ipc.NewReader(bytes.NewReader(a.data))
		if err != nil {
			t.Fatalf("the data is no Arrow stream: %v", err)
		}
		defer rd.Release()
		var got []string
		for rd.Next() {
			rec := rd.RecordBatch()
			for i := range int(rec.NumRows()) {
				got = append(got, fmt.Sprintf("%s/%s/%s", rec.Column(0).ValueStr(i), rec.Column(1).ValueStr(i), rec.Column(2).ValueStr(i)))
			}
		}
		if want := "Dune/1965/9.99 Foundation/1951/8.25"; strings.Join(got, " ") != want {
			t.Errorf("Arrow rows %q, want %q", got, want)
		}
	})
	t.Run("non-fatal error InvalidColumnOrdinal", func(t *testing.T) {
		// A record without the column is left out, with an error record
		// naming its offset; the others are answered.
		env.upload(t, cc, "ragged.csv", "a,1\nb\nc,3\n", nil)
		a := answer(t, "ragged.csv", "SELECT _1 FROM BlobStorage WHERE _2 > 0", "", "")
		if string(a.data) != "a\nc\n" || len(a.errors) != 1 || a.errors[0] != "InvalidColumnOrdinal fatal=false position=4" {
			t.Errorf("data %q, errors %v", a.data, a.errors)
		}
	})
	t.Run("fatal error", func(t *testing.T) {
		// CSV read as JSON: the query stops, and the answer still ends.
		a := answer(t, "books.csv", "SELECT * FROM BlobStorage", jsonSerialization, "")
		if len(a.data) != 0 || len(a.errors) != 1 || !strings.Contains(a.errors[0], "fatal=true") || a.end != int64(len(booksCSV)) {
			t.Errorf("data %q, errors %v, end %d", a.data, a.errors, a.end)
		}
	})
	t.Run("snapshot", func(t *testing.T) {
		bc := env.upload(t, cc, "v.csv", "old\n", nil)
		snap, err := bc.CreateSnapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		env.upload(t, cc, "v.csv", "new\n", nil)
		r := env.do(t, http.MethodPost, "/box/v.csv?comp=query&snapshot="+url.QueryEscape(*snap.Snapshot), nil, queryRequest("SELECT * FROM BlobStorage", "", ""))
		r.want(t, http.StatusOK, "")
		if a := decodeQueryAnswer(t, r.body); string(a.data) != "old\n" {
			t.Errorf("the snapshot answered %q", a.data)
		}
	})

	t.Run("InvalidXmlDocument", func(t *testing.T) {
		query(t, "books.csv", []byte("<QueryRequest><Expression>"), nil).want(t, http.StatusBadRequest, "InvalidXmlDocument")
		query(t, "books.csv", []byte("<QueryRequest><QueryType>SQL</QueryType></QueryRequest>"), nil).want(t, http.StatusBadRequest, "InvalidXmlDocument")
	})
	t.Run("InvalidXmlNodeValue", func(t *testing.T) {
		// Malformed SQL, and SQL this service does not run (documented in
		// internal/storage/blobquery), are refused before any data is read.
		for _, expr := range []string{
			"SELECT FROM BlobStorage",
			"SELECT * FROM Elsewhere",
			"SELECT * FROM BlobStorage WHERE Year",
			"SELECT * FROM BlobStorage WHERE Title LIKE 'D%'",
			"SELECT * FROM BlobStorage WHERE Title IS NULL",
			"SELECT SUM(Price) FROM BlobStorage",
			"SELECT * FROM BlobStorage[*].books",
			"SELECT * FROM BlobStorage WHERE Title = 'open",
		} {
			r := query(t, "books.csv", queryRequest(expr, headers, ""), nil)
			r.want(t, http.StatusBadRequest, "InvalidXmlNodeValue")
			if r.header.Get("x-ms-invalid-xml-node-name") != "Expression" {
				t.Errorf("%s: node %q", expr, r.header.Get("x-ms-invalid-xml-node-name"))
			}
		}
		query(t, "books.csv", queryRequest("SELECT * FROM BlobStorage", csvSerialization(",,", `"`, "", false), ""), nil).
			want(t, http.StatusBadRequest, "InvalidXmlNodeValue")
	})
	t.Run("UnsupportedXmlNode", func(t *testing.T) {
		parquet := "<Format><Type>parquet</Type></Format>"
		query(t, "books.csv", queryRequest("SELECT * FROM BlobStorage", parquet, ""), nil).want(t, http.StatusBadRequest, "UnsupportedXmlNode")
	})
	t.Run("BlobNotFound", func(t *testing.T) {
		query(t, "missing.csv", queryRequest("SELECT * FROM BlobStorage", "", ""), nil).want(t, http.StatusNotFound, "BlobNotFound")
	})
	t.Run("ContainerNotFound", func(t *testing.T) {
		env.do(t, http.MethodPost, "/nobox/b?comp=query", nil, queryRequest("SELECT * FROM BlobStorage", "", "")).
			want(t, http.StatusNotFound, "ContainerNotFound")
	})
	t.Run("ConditionNotMet", func(t *testing.T) {
		query(t, "books.csv", queryRequest("SELECT * FROM BlobStorage", "", ""), map[string]string{"If-Match": `"0x1"`}).
			want(t, http.StatusPreconditionFailed, "ConditionNotMet")
	})
	t.Run("InvalidBlobType", func(t *testing.T) {
		if _, err := cc.NewAppendBlobClient("log").Create(ctx, &appendblob.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		query(t, "log", queryRequest("SELECT * FROM BlobStorage", "", ""), nil).want(t, http.StatusConflict, "InvalidBlobType")
	})
	t.Run("AuthorizationPermissionMismatch", func(t *testing.T) {
		// A query reads: r is needed, w is not enough.
		send := func(perms string) int {
			req, err := http.NewRequest(http.MethodPost, env.blobSAS(t, "box", "books.csv", perms)+"&comp=query",
				bytes.NewReader(queryRequest("SELECT * FROM BlobStorage", "", "")))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("x-ms-version", "2021-12-02")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if code := resp.Header.Get("x-ms-error-code"); resp.StatusCode == http.StatusForbidden && code != "AuthorizationPermissionMismatch" {
				t.Errorf("refused with %s", code)
			}
			return resp.StatusCode
		}
		if got := send("w"); got != http.StatusForbidden {
			t.Errorf("with w: %d, want 403", got)
		}
		if got := send("r"); got != http.StatusOK {
			t.Errorf("with r: %d, want 200", got)
		}
	})
}
