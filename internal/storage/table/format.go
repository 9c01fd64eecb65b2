package table

import (
	"encoding/base64"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// metadata is the JSON flavour a client asked for.
type metadata uint8

const (
	noMetadata metadata = iota
	minimalMetadata
	fullMetadata
)

// responseMetadata reads $format, which overrides Accept, then Accept;
// anything else (including no Accept) gets minimal metadata, the SDKs'
// default.
func responseMetadata(r *http.Request) metadata {
	if f := r.URL.Query().Get("$format"); f != "" {
		return acceptMetadata(f)
	}
	return acceptMetadata(r.Header.Get("Accept"))
}

func (m metadata) contentType() string {
	switch m {
	case noMetadata:
		return "application/json;odata=nometadata;streaming=true;charset=utf-8"
	case fullMetadata:
		return "application/json;odata=fullmetadata;streaming=true;charset=utf-8"
	}
	return "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
}

// etag is Azure's weak ETag for an entity: the Timestamp, URL-escaped.
func etag(ts int64) string {
	return `W/"datetime'` + url.QueryEscape(formatTicks(ts)) + `'"`
}

// keyPath renders table(PartitionKey='..',RowKey='..') the way Azure
// writes odata.id and editLink: quotes doubled, then URL-escaped.
func keyPath(table, pk, rk string) string {
	q := func(s string) string { return url.PathEscape(strings.ReplaceAll(s, "'", "''")) }
	return table + "(PartitionKey='" + q(pk) + "',RowKey='" + q(rk) + "')"
}

// docContext is what an entity's or table's JSON needs beyond its data.
type docContext struct {
	md      metadata
	base    string // service URL with trailing slash, e.g. http://host/account/
	account string
	table   string
	sel     []string // $select; nil means every property
}

// needsType reports whether a value of kind k carries an @odata.type
// annotation at this metadata level.
func (m metadata) needsType(v value) bool {
	switch m {
	case noMetadata:
		return false
	case fullMetadata:
		return v.kind != edmString && v.kind != edmBool && v.kind != edmInt32
	}
	switch v.kind {
	case edmInt64, edmDateTime, edmGUID, edmBinary:
		return true
	case edmDouble:
		return math.IsNaN(v.f) || math.IsInf(v.f, 0)
	}
	return false
}

// appendEntity writes one entity object. element is set for a single
// entity answer (it carries odata.metadata), unset inside a "value" array.
func appendEntity(b []byte, c *docContext, e *entity, element bool) []byte {
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, name)
		b = append(b, ':')
	}
	if element && c.md != noMetadata {
		field("odata.metadata")
		b = appendString(b, c.base+"$metadata#"+c.table+"/@Element")
	}
	if c.md == fullMetadata {
		field("odata.type")
		b = appendString(b, c.account+"."+c.table)
		field("odata.id")
		b = appendString(b, c.base+keyPath(c.table, e.pk, e.rk))
	}
	if c.md != noMetadata {
		field("odata.etag")
		b = appendString(b, etag(e.ts))
	}
	if c.md == fullMetadata {
		field("odata.editLink")
		b = appendString(b, keyPath(c.table, e.pk, e.rk))
	}
	prop := func(name string, v value) {
		// Azure leaves the type of the system property Timestamp out of
		// minimal metadata (clients know it); full metadata has it.
		if c.md.needsType(v) && (name != "Timestamp" || c.md == fullMetadata) {
			field(name + "@odata.type")
			b = appendString(b, v.kind.String())
		}
		field(name)
		b = appendValue(b, v)
	}
	if c.sel == nil {
		prop("PartitionKey", value{kind: edmString, s: e.pk})
		prop("RowKey", value{kind: edmString, s: e.rk})
		prop("Timestamp", value{kind: edmDateTime, i: e.ts})
		for _, p := range e.props {
			prop(p.name, p.val)
		}
	} else {
		// A selected property the entity lacks is left out: the SDKs read
		// a null as a zero of some guessed type.
		for _, name := range c.sel {
			if v, ok := e.get(name); ok {
				prop(name, v)
			}
		}
	}
	return append(b, '}')
}

func appendValue(b []byte, v value) []byte {
	switch v.kind {
	case edmString, edmGUID:
		return appendString(b, v.s)
	case edmInt32:
		return strconv.AppendInt(b, v.i, 10)
	case edmInt64:
		b = append(b, '"')
		b = strconv.AppendInt(b, v.i, 10)
		return append(b, '"')
	case edmBool:
		if v.i != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case edmDateTime:
		return appendString(b, formatTicks(v.i))
	case edmBinary:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, []byte(v.s))
		return append(b, '"')
	case edmDouble:
		switch {
		case math.IsNaN(v.f):
			return append(b, `"NaN"`...)
		case math.IsInf(v.f, 1):
			return append(b, `"Infinity"`...)
		case math.IsInf(v.f, -1):
			return append(b, `"-Infinity"`...)
		}
		n := len(b)
		b = strconv.AppendFloat(b, v.f, 'g', -1, 64)
		// Keep a decimal point so clients do not read a whole double as Int32.
		if !strings.ContainsAny(string(b[n:]), ".eE") {
			b = append(b, ".0"...)
		}
		return b
	}
	return append(b, "null"...)
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				switch c {
				case '\n':
					b = append(b, '\\', 'n')
				case '\r':
					b = append(b, '\\', 'r')
				case '\t':
					b = append(b, '\\', 't')
				default:
					b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
				}
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendTable writes one table object of a Query Tables or Create Table
// answer.
func appendTable(b []byte, c *docContext, name string, element bool) []byte {
	b = append(b, '{')
	if element && c.md != noMetadata {
		b = appendString(b, "odata.metadata")
		b = append(b, ':')
		b = appendString(b, c.base+"$metadata#Tables/@Element")
		b = append(b, ',')
	}
	if c.md == fullMetadata {
		link := "Tables('" + url.PathEscape(name) + "')"
		b = append(b, `"odata.type":`...)
		b = appendString(b, c.account+".Tables")
		b = append(b, `,"odata.id":`...)
		b = appendString(b, c.base+link)
		b = append(b, `,"odata.editLink":`...)
		b = appendString(b, link)
		b = append(b, ',')
	}
	b = append(b, `"TableName":`...)
	b = appendString(b, name)
	return append(b, '}')
}
