package blobquery

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// reader yields the records of the input, each with the offset in the
// blob where it begins. An error other than io.EOF ends the query.
type reader interface {
	next() (record, int64, error)
	// names are the input's column names where it has them (a CSV header
	// row), for SELECT * and named columns.
	names() []string
}

// countingReader counts the bytes read from the blob.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// csvReader reads delimited text with the request's separators, quote
// and escape characters.
type csvReader struct {
	in     *countingReader
	f      Format
	header []string
	index  map[string]int
}

func newCSVReader(in *countingReader, f Format) (*csvReader, error) {
	c := &csvReader{in: in, f: f}
	if f.Headers {
		fields, _, err := c.fields()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		c.header, c.index = fields, map[string]int{}
		for i, h := range fields {
			if _, dup := c.index[h]; !dup {
				c.index[h] = i
			}
		}
	}
	return c, nil
}

func (c *csvReader) names() []string { return c.header }

func (c *csvReader) next() (record, int64, error) {
	fields, at, err := c.fields()
	if err != nil {
		return nil, at, err
	}
	return csvRecord{fields: fields, index: c.index}, at, nil
}

// fields reads one record: io.EOF when the input has no more.
func (c *csvReader) fields() ([]string, int64, error) {
	at := c.in.n
	var fields []string
	var field []byte
	quoted, started := false, false
	for {
		b, err := c.in.ReadByte()
		if errors.Is(err, io.EOF) {
			if !started {
				return nil, at, io.EOF
			}
			return append(fields, string(field)), at, nil
		}
		if err != nil {
			return nil, at, err
		}
		started = true
		switch {
		case c.f.Escape != 0 && b == c.f.Escape && b != c.f.Quote:
			e, err := c.in.ReadByte()
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, at, err
			}
			if err == nil {
				field = append(field, e)
			}
		case quoted && b == c.f.Quote:
			// A doubled quote is one quote; a single one closes.
			if p, err := c.in.r.Peek(1); err == nil && p[0] == c.f.Quote {
				_, _ = c.in.ReadByte()
				field = append(field, b)
			} else {
				quoted = false
			}
		case quoted:
			field = append(field, b)
		case c.f.Quote != 0 && b == c.f.Quote:
			quoted = true
		case b == c.f.ColumnSep:
			fields, field = append(fields, string(field)), nil
		case b == c.f.RecordSep:
			return append(fields, string(field)), at, nil
		default:
			field = append(field, b)
		}
	}
}

type csvRecord struct {
	fields []string
	index  map[string]int
}

func (r csvRecord) get(c column) (value, error) {
	i := c.ordinal - 1
	if c.ordinal == 0 {
		var ok bool
		if i, ok = r.index[c.name]; !ok {
			return value{}, &recordError{"InvalidColumnName", fmt.Sprintf("the input has no column %q", c.name)}
		}
	}
	if i >= len(r.fields) {
		return value{}, &recordError{"InvalidColumnOrdinal", fmt.Sprintf("the record has %d columns, not %d", len(r.fields), i+1)}
	}
	return strValue(r.fields[i]), nil
}

// jsonReader reads JSON objects, one a record, separated by the request's
// record separator (and white space).
type jsonReader struct {
	in  *countingReader
	sep byte
}

func (j *jsonReader) names() []string { return nil }

// errBadJSON ends a query whose input is not JSON records.
type errBadJSON struct{ why string }

func (e errBadJSON) Error() string { return "the input is not JSON records: " + e.why }

func (j *jsonReader) next() (record, int64, error) {
	var b byte
	var err error
	for {
		if b, err = j.in.ReadByte(); err != nil {
			return nil, j.in.n, err
		}
		if b != j.sep && b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			break
		}
	}
	at := j.in.n - 1
	if b != '{' {
		return nil, at, errBadJSON{fmt.Sprintf("a record starts with %q, not '{'", b)}
	}
	raw := []byte{b}
	depth, inString, escaped := 1, false, false
	for depth > 0 {
		if b, err = j.in.ReadByte(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, at, errBadJSON{"the last record is cut short"}
			}
			return nil, at, err
		}
		raw = append(raw, b)
		switch {
		case escaped:
			escaped = false
		case inString && b == '\\':
			escaped = true
		case b == '"':
			inString = !inString
		case !inString && (b == '{' || b == '['):
			depth++
		case !inString && (b == '}' || b == ']'):
			depth--
		}
	}
	rec, err := parseObject(raw)
	if err != nil {
		return nil, at, errBadJSON{err.Error()}
	}
	return rec, at, nil
}

type jsonRecord struct {
	keys []string
	vals []json.RawMessage
}

// parseObject reads a JSON object keeping its fields' order.
func parseObject(raw []byte) (jsonRecord, error) {
	var rec jsonRecord
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return rec, fmt.Errorf("not an object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return rec, err
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return rec, err
		}
		rec.keys, rec.vals = append(rec.keys, key), append(rec.vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return rec, err
	}
	if dec.More() {
		return rec, fmt.Errorf("trailing data")
	}
	return rec, nil
}

func (r jsonRecord) get(c column) (value, error) {
	if c.ordinal > 0 {
		if c.ordinal > len(r.vals) {
			return value{}, nil
		}
		return jsonValue(r.vals[c.ordinal-1]), nil
	}
	cur := r
	for i, name := range c.path {
		k := -1
		for j, key := range cur.keys {
			if key == name {
				k = j
				break
			}
		}
		if k < 0 {
			return value{}, nil
		}
		if i == len(c.path)-1 {
			return jsonValue(cur.vals[k]), nil
		}
		next, err := parseObject(cur.vals[k])
		if err != nil {
			return value{}, nil
		}
		cur = next
	}
	return value{}, nil
}

// jsonValue is a JSON value as a query value.
func jsonValue(raw json.RawMessage) value {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return value{}
	}
	switch s[0] {
	case '"':
		var str string
		if json.Unmarshal(raw, &str) == nil {
			return strValue(str)
		}
	case 't', 'f':
		return value{kind: vBool, b: s[0] == 't'}
	case 'n':
		return value{}
	case '{', '[':
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			s = buf.String()
		}
		return value{kind: vRaw, s: s}
	default:
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return value{kind: vNum, n: n, s: s}
		}
	}
	return value{kind: vRaw, s: s}
}
