// Package blobquery runs Query Blob Contents: a subset of Azure's query
// acceleration SQL over a blob of CSV or JSON records, answered as Azure
// answers it, in Avro object container framing (result data, progress,
// errors and an end record).
//
// What runs: SELECT * | COUNT(*) | columns FROM BlobStorage, with WHERE
// comparisons (=, !=, <>, <, <=, >, >=) of columns (_N ordinals, header
// or field names, "quoted" names, dotted paths in JSON) and string,
// numeric or boolean literals, combined with AND, OR, NOT and
// parentheses, and LIMIT. Input is delimited text or JSON; output is
// delimited text, JSON or Arrow. Anything else in the SQL (functions,
// IS NULL, IN, BETWEEN, LIKE, CAST, aggregates other than COUNT(*), table
// descriptors with paths) is refused before any data is read, with
// 400 InvalidXmlNodeValue naming the Expression node; a Parquet input or
// output is 400 UnsupportedXmlNode.
// https://learn.microsoft.com/rest/api/storageservices/query-blob-contents
// https://learn.microsoft.com/azure/storage/blobs/query-acceleration-sql-reference
package blobquery

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/weftcloud/weft/internal/storage"
)

// Request is a parsed QueryRequest body.
type Request struct {
	Query  *Query
	Input  Format
	Output Format
}

// Format is one serialization of records.
type Format struct {
	Type string // "delimited", "json" or "arrow"
	// Delimited text: single characters; Quote and Escape 0 for none.
	ColumnSep, Quote, RecordSep, Escape byte
	Headers                             bool
	// Arrow output: the schema of the answer's columns.
	Arrow []ArrowField
}

// ArrowField is one field of ArrowConfiguration's schema.
type ArrowField struct {
	Type, Name       string
	Precision, Scale int
}

// defaultFormat is the delimited text the service assumes when a request
// names no serialization: comma-separated, double-quoted, one record a
// line, no header row.
func defaultFormat() Format {
	return Format{Type: "delimited", ColumnSep: ',', Quote: '"', RecordSep: '\n'}
}

type formatXML struct {
	Type      string `xml:"Type"`
	Delimited *struct {
		ColumnSeparator *string `xml:"ColumnSeparator"`
		FieldQuote      *string `xml:"FieldQuote"`
		RecordSeparator *string `xml:"RecordSeparator"`
		EscapeChar      *string `xml:"EscapeChar"`
		HasHeaders      string  `xml:"HasHeaders"`
	} `xml:"DelimitedTextConfiguration"`
	JSON *struct {
		RecordSeparator *string `xml:"RecordSeparator"`
	} `xml:"JsonTextConfiguration"`
	Arrow *struct {
		Schema struct {
			Fields []struct {
				Type      string `xml:"Type"`
				Name      string `xml:"Name"`
				Precision int    `xml:"Precision"`
				Scale     int    `xml:"Scale"`
			} `xml:"Field"`
		} `xml:"Schema"`
	} `xml:"ArrowConfiguration"`
}

type serializationXML struct {
	Format formatXML `xml:"Format"`
}

type requestXML struct {
	XMLName    xml.Name          `xml:"QueryRequest"`
	QueryType  string            `xml:"QueryType"`
	Expression *string           `xml:"Expression"`
	Input      *serializationXML `xml:"InputSerialization"`
	Output     *serializationXML `xml:"OutputSerialization"`
}

// maxRequest bounds the QueryRequest body.
const maxRequest = 1 << 20

// ParseRequest reads a QueryRequest body. A body that is no such XML is
// 400 InvalidXmlDocument; a value that is wrong for its node (a query
// type other than SQL, a separator of more than one character, SQL we
// cannot run) is 400 InvalidXmlNodeValue; a serialization we do not
// produce (Parquet, Arrow input) is 400 UnsupportedXmlNode.
func ParseRequest(body io.Reader) (*Request, error) {
	raw, err := io.ReadAll(io.LimitReader(body, maxRequest+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxRequest {
		return nil, storage.Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The QueryRequest is larger than %d bytes.", maxRequest)
	}
	var doc requestXML
	if err := xml.Unmarshal(raw, &doc); err != nil {
		return nil, storage.Errorf(http.StatusBadRequest, "InvalidXmlDocument", "XML specified is not syntactically valid: %v.", err)
	}
	if doc.Expression == nil {
		return nil, storage.Errorf(http.StatusBadRequest, "InvalidXmlDocument", "The QueryRequest has no Expression.")
	}
	if !strings.EqualFold(strings.TrimSpace(doc.QueryType), "SQL") {
		return nil, errNode("QueryType", "the query type must be SQL")
	}
	req := &Request{Input: defaultFormat()}
	if doc.Input != nil {
		if req.Input, err = parseFormat(&doc.Input.Format, "InputSerialization"); err != nil {
			return nil, err
		}
		if req.Input.Type == "arrow" {
			return nil, errUnsupported("InputSerialization", "arrow is an output serialization only")
		}
	}
	req.Output = req.Input
	req.Output.Headers = false
	if doc.Output != nil {
		if req.Output, err = parseFormat(&doc.Output.Format, "OutputSerialization"); err != nil {
			return nil, err
		}
	}
	if req.Query, err = Parse(*doc.Expression); err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return nil, errNode("Expression", se.Error())
		}
		return nil, err
	}
	if req.Output.Type == "arrow" && len(req.Output.Arrow) == 0 {
		return nil, errNode("ArrowConfiguration", "the Arrow schema has no fields")
	}
	return req, nil
}

func parseFormat(f *formatXML, node string) (Format, error) {
	out := defaultFormat()
	switch strings.ToLower(strings.TrimSpace(f.Type)) {
	case "delimited":
		if d := f.Delimited; d != nil {
			// An empty separator is the default one: the JavaScript SDK's
			// XML writer trims a newline record separator to nothing. An
			// empty quote or escape character is none.
			for _, c := range []struct {
				v    *string
				to   *byte
				name string
			}{
				{d.ColumnSeparator, &out.ColumnSep, "ColumnSeparator"},
				{d.FieldQuote, &out.Quote, "FieldQuote"},
				{d.RecordSeparator, &out.RecordSep, "RecordSeparator"},
				{d.EscapeChar, &out.Escape, "EscapeChar"},
			} {
				if c.v == nil || *c.v == "" && (c.to == &out.ColumnSep || c.to == &out.RecordSep) {
					continue
				}
				b, err := oneChar(*c.v)
				if err != nil {
					return out, errNode(c.name, err.Error())
				}
				*c.to = b
			}
			h := strings.TrimSpace(d.HasHeaders)
			if h != "" && !strings.EqualFold(h, "true") && !strings.EqualFold(h, "false") {
				return out, errNode("HasHeaders", "must be true or false")
			}
			out.Headers = strings.EqualFold(h, "true")
		}
	case "json":
		out = Format{Type: "json", RecordSep: '\n'}
		if j := f.JSON; j != nil && j.RecordSeparator != nil && *j.RecordSeparator != "" {
			b, err := oneChar(*j.RecordSeparator)
			if err != nil {
				return out, errNode("RecordSeparator", err.Error())
			}
			out.RecordSep = b
		}
	case "arrow":
		out = Format{Type: "arrow"}
		if a := f.Arrow; a != nil {
			for _, fl := range a.Schema.Fields {
				t := strings.ToLower(strings.TrimSpace(fl.Type))
				if !arrowTypes[t] {
					return out, errNode("Type", fmt.Sprintf("unknown Arrow field type %q", fl.Type))
				}
				out.Arrow = append(out.Arrow, ArrowField{Type: t, Name: fl.Name, Precision: fl.Precision, Scale: fl.Scale})
			}
		}
	case "parquet":
		return out, errUnsupported(node, "Parquet is not supported")
	default:
		return out, errNode("Type", fmt.Sprintf("unknown serialization %q", f.Type))
	}
	return out, nil
}

// oneChar is the single ASCII character a configuration node holds, 0
// for "".
func oneChar(v string) (byte, error) {
	if v == "" {
		return 0, nil
	}
	if len(v) != 1 || v[0] >= utf8.RuneSelf {
		return 0, errors.New("must be a single ASCII character")
	}
	return v[0], nil
}

func errNode(node, why string) error {
	e := storage.Errorf(http.StatusBadRequest, "InvalidXmlNodeValue", "The value for one of the XML nodes is not in the correct format: %s: %s.", node, why)
	e.Header = http.Header{"X-Ms-Invalid-Xml-Node-Name": {node}}
	return e
}

func errUnsupported(node, why string) error {
	return storage.Errorf(http.StatusBadRequest, "UnsupportedXmlNode", "One of the XML nodes specified in the request body is not supported: %s: %s.", node, why)
}
