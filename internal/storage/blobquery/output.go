package blobquery

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// writer encodes output records. row appends one record's encoding to
// buf; flush appends what the writer held back (Arrow's record batches),
// and, final, what ends its stream.
type writer interface {
	row(buf *bytes.Buffer, names []string, vals []value) error
	flush(buf *bytes.Buffer, final bool) error
}

func newWriter(f Format) (writer, error) {
	switch f.Type {
	case "json":
		return &jsonWriter{sep: f.RecordSep}, nil
	case "arrow":
		return newArrowWriter(f.Arrow)
	}
	return &csvWriter{f: f}, nil
}

// csvWriter writes delimited text: a field holding a separator or the
// quote is quoted (quotes doubled), or, with no quote character, its
// special characters escaped.
type csvWriter struct {
	f       Format
	started bool
}

func (w *csvWriter) row(buf *bytes.Buffer, names []string, vals []value) error {
	if !w.started && w.f.Headers {
		hs := make([]value, len(names))
		for i, n := range names {
			hs[i] = strValue(n)
		}
		w.line(buf, hs)
	}
	w.started = true
	w.line(buf, vals)
	return nil
}

func (w *csvWriter) line(buf *bytes.Buffer, vals []value) {
	special := func(c byte) bool {
		return c == w.f.ColumnSep || c == w.f.RecordSep || c == w.f.Quote && c != 0 || c == w.f.Escape && c != 0
	}
	for i, v := range vals {
		if i > 0 {
			buf.WriteByte(w.f.ColumnSep)
		}
		s := v.text()
		if !bytes.ContainsFunc([]byte(s), func(r rune) bool { return r < 0x80 && special(byte(r)) }) {
			buf.WriteString(s)
			continue
		}
		if q := w.f.Quote; q != 0 {
			buf.WriteByte(q)
			for j := range len(s) {
				if s[j] == q {
					buf.WriteByte(q)
				}
				buf.WriteByte(s[j])
			}
			buf.WriteByte(q)
			continue
		}
		for j := range len(s) {
			if special(s[j]) && w.f.Escape != 0 {
				buf.WriteByte(w.f.Escape)
			}
			buf.WriteByte(s[j])
		}
	}
	buf.WriteByte(w.f.RecordSep)
}

func (w *csvWriter) flush(*bytes.Buffer, bool) error { return nil }

// jsonWriter writes one JSON object a record.
type jsonWriter struct{ sep byte }

func (w *jsonWriter) row(buf *bytes.Buffer, names []string, vals []value) error {
	buf.WriteByte('{')
	for i, v := range vals {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(names[i])
		buf.Write(k)
		buf.WriteByte(':')
		switch v.kind {
		case vNull:
			buf.WriteString("null")
		case vBool:
			fmt.Fprint(buf, v.b)
		case vNum, vRaw:
			buf.WriteString(v.s)
		default:
			s, _ := json.Marshal(v.s)
			buf.Write(s)
		}
	}
	buf.WriteByte('}')
	buf.WriteByte(w.sep)
	return nil
}

func (w *jsonWriter) flush(*bytes.Buffer, bool) error { return nil }

// arrowTypes are the field types of ArrowConfiguration.
var arrowTypes = map[string]bool{"int64": true, "bool": true, "timestamp[ms]": true, "string": true, "double": true, "decimal": true}

// arrowBatch is how many records one Arrow record batch holds.
const arrowBatch = 1024

// arrowWriter writes the Arrow IPC stream format with the request's
// schema: the i-th output column fills the i-th field; a value that does
// not convert to its field's type is null.
type arrowWriter struct {
	b    *array.RecordBuilder
	ipc  *ipc.Writer
	out  bytes.Buffer
	rows int
}

func newArrowWriter(fields []ArrowField) (*arrowWriter, error) {
	fs := make([]arrow.Field, len(fields))
	for i, f := range fields {
		var t arrow.DataType
		switch f.Type {
		case "int64":
			t = arrow.PrimitiveTypes.Int64
		case "bool":
			t = arrow.FixedWidthTypes.Boolean
		case "timestamp[ms]":
			t = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
		case "string":
			t = arrow.BinaryTypes.String
		case "double":
			t = arrow.PrimitiveTypes.Float64
		case "decimal":
			if f.Precision < 1 || f.Precision > 38 || f.Scale < 0 || f.Scale > f.Precision {
				return nil, errNode("ArrowConfiguration", fmt.Sprintf("decimal field %q: precision 1 to 38, scale 0 to the precision", f.Name))
			}
			t = &arrow.Decimal128Type{Precision: int32(f.Precision), Scale: int32(f.Scale)}
		}
		fs[i] = arrow.Field{Name: f.Name, Type: t, Nullable: true}
	}
	schema := arrow.NewSchema(fs, nil)
	w := &arrowWriter{b: array.NewRecordBuilder(memory.DefaultAllocator, schema)}
	w.ipc = ipc.NewWriter(&w.out, ipc.WithSchema(schema))
	return w, nil
}

func (w *arrowWriter) row(buf *bytes.Buffer, _ []string, vals []value) error {
	for i, fb := range w.b.Fields() {
		if i >= len(vals) || vals[i].kind == vNull || fb.AppendValueFromString(vals[i].text()) != nil {
			fb.AppendNull()
		}
	}
	w.rows++
	if w.rows == arrowBatch {
		return w.flush(buf, false)
	}
	return nil
}

func (w *arrowWriter) flush(buf *bytes.Buffer, final bool) error {
	if w.rows > 0 {
		rec := w.b.NewRecordBatch()
		err := w.ipc.Write(rec)
		rec.Release()
		w.rows = 0
		if err != nil {
			return err
		}
	}
	if final {
		if err := w.ipc.Close(); err != nil {
			return err
		}
		w.b.Release()
	}
	buf.Write(w.out.Bytes())
	w.out.Reset()
	return nil
}
