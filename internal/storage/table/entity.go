package table

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/weftcloud/weft/internal/storage"
)

// Azure's documented entity limits. An entity has at most 255 properties,
// the three system ones (PartitionKey, RowKey, Timestamp) included. A
// string or binary value is at most 64 KiB: strings are counted as Azure
// stores them, UTF-16, so at most 32K characters (fewer outside the Basic
// Multilingual Plane, which take two UTF-16 units each).
const (
	maxEntitySize     = 1 << 20
	maxCustomProps    = 252
	maxKeyBytes       = 1024
	maxPropNameLen    = 255
	maxPropValueBytes = 64 << 10
)

type property struct {
	name string
	val  value
}

// entity is a stored row. ts is the service-maintained Timestamp in ticks;
// the ETag derives from it, so every write allocates a fresh one.
type entity struct {
	pk, rk string
	ts     int64
	props  []property // sorted by name, unique
}

func (e *entity) get(name string) (value, bool) {
	switch name {
	case "PartitionKey":
		return value{kind: edmString, s: e.pk}, true
	case "RowKey":
		return value{kind: edmString, s: e.rk}, true
	case "Timestamp":
		return value{kind: edmDateTime, i: e.ts}, true
	}
	i, ok := slices.BinarySearchFunc(e.props, name, func(p property, n string) int { return strings.Compare(p.name, n) })
	if !ok {
		return value{}, false
	}
	return e.props[i].val, true
}

// merge overlays the properties of o onto e, as Merge Entity does.
func (e *entity) merge(o *entity) {
	for _, p := range o.props {
		i, ok := slices.BinarySearchFunc(e.props, p.name, func(q property, n string) int { return strings.Compare(q.name, n) })
		if ok {
			e.props[i] = p
		} else {
			e.props = slices.Insert(e.props, i, p)
		}
	}
}

// size follows Azure's accounting: 4 bytes plus the keys as UTF-16, and
// per property 8 bytes plus its name as UTF-16 plus the value.
func (e *entity) size() int {
	n := 4 + utf16Bytes(e.pk) + utf16Bytes(e.rk)
	for _, p := range e.props {
		n += 8 + utf16Bytes(p.name)
		switch p.val.kind {
		case edmString:
			n += 4 + utf16Bytes(p.val.s)
		case edmBinary:
			n += 4 + len(p.val.s)
		case edmGUID:
			n += 16
		case edmBool:
			n++
		case edmInt32:
			n += 4
		default:
			n += 8
		}
	}
	return n
}

// utf16Bytes is the size of s in UTF-16, the form Azure stores and limits
// strings in: two bytes per character, four outside the Basic Multilingual
// Plane. (An ASCII string is twice its UTF-8 size; a CJK one smaller.)
func utf16Bytes(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 4
		} else {
			n += 2
		}
	}
	return n
}

// valueSize is what a string or binary value counts against
// maxPropValueBytes; other kinds are fixed and small.
func valueSize(v value) int {
	switch v.kind {
	case edmString:
		return utf16Bytes(v.s)
	case edmBinary:
		return len(v.s)
	}
	return 0
}

func badInput(format string, args ...any) *storage.Error {
	return storage.Errorf(http.StatusBadRequest, "InvalidInput", format, args...)
}

// validateKey enforces Azure's key rules: no / \ # ? nor control
// characters, and at most 1 KiB.
func validateKey(name, k string) error {
	if len(k) > maxKeyBytes {
		return storage.Errorf(http.StatusBadRequest, "KeyValueTooLarge", "The %s value is larger than 1 KiB.", name)
	}
	for _, r := range k {
		if r == '/' || r == '\\' || r == '#' || r == '?' || r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == utf8.RuneError {
			return storage.Errorf(http.StatusBadRequest, "OutOfRangeInput", "The '%s' parameter of value '%s' is out of range.", name, k)
		}
	}
	return nil
}

func validPropName(n string) bool {
	if n == "" || len(n) > maxPropNameLen {
		return false
	}
	for i, r := range n {
		if r == '_' || unicode.IsLetter(r) || (i > 0 && (unicode.IsDigit(r) || unicode.Is(unicode.Mn, r))) {
			continue
		}
		return false
	}
	return true
}

// parseEntity decodes a request body. Keys are read when present;
// requireKeys is set for inserts, whose keys come only from the body.
func parseEntity(body []byte, requireKeys bool) (*entity, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, badInput("The request body is not a valid JSON object.")
	}
	if dec.More() {
		return nil, badInput("The request body has trailing data.")
	}
	e := &entity{}
	var havePK, haveRK bool
	for name, raw := range m {
		if strings.HasPrefix(name, "odata.") || strings.HasSuffix(name, "@odata.type") {
			continue
		}
		var annot string
		if a, ok := m[name+"@odata.type"]; ok {
			s, ok := a.(string)
			if !ok {
				return nil, badInput("The type annotation of %s is not a string.", name)
			}
			annot = s
		}
		switch name {
		case "PartitionKey", "RowKey":
			s, ok := raw.(string)
			if !ok || (annot != "" && annot != "Edm.String") {
				return nil, storage.Errorf(http.StatusBadRequest, "InvalidValueType", "The %s must be a string.", name)
			}
			if err := validateKey(name, s); err != nil {
				return nil, err
			}
			if name == "PartitionKey" {
				e.pk, havePK = s, true
			} else {
				e.rk, haveRK = s, true
			}
			continue
		case "Timestamp":
			// The service owns Timestamp; clients echo it back and Azure ignores it.
			continue
		}
		if raw == nil {
			// A null property is an absent one.
			continue
		}
		if !validPropName(name) {
			return nil, storage.Errorf(http.StatusBadRequest, "PropertyNameInvalid", "The property name %q is invalid.", name)
		}
		v, err := decodeValue(name, raw, annot)
		if err != nil {
			return nil, err
		}
		if valueSize(v) > maxPropValueBytes {
			return nil, storage.Errorf(http.StatusBadRequest, "PropertyValueTooLarge", "The property %s is larger than 64 KiB (a string at most 32K UTF-16 characters).", name)
		}
		e.props = append(e.props, property{name: name, val: v})
	}
	if requireKeys && (!havePK || !haveRK) {
		return nil, storage.Errorf(http.StatusBadRequest, "PropertiesNeedValue", "The values are not specified for all properties in the entity: PartitionKey and RowKey are required.")
	}
	if len(e.props) > maxCustomProps {
		return nil, storage.Errorf(http.StatusBadRequest, "TooManyProperties", "The entity has more than %d properties.", maxCustomProps)
	}
	slices.SortFunc(e.props, func(a, b property) int { return strings.Compare(a.name, b.name) })
	if e.size() > maxEntitySize {
		return nil, storage.Errorf(http.StatusBadRequest, "EntityTooLarge", "The entity is larger than the maximum size permitted.")
	}
	return e, nil
}

var errType = errors.New("wrong JSON type")

func decodeValue(name string, raw any, annot string) (value, error) {
	bad := func() (value, error) {
		return value{}, storage.Errorf(http.StatusBadRequest, "InvalidInput", "The value of property %s does not match its type %s.", name, cmpOr(annot, "inferred"))
	}
	if annot == "" {
		switch x := raw.(type) {
		case string:
			return value{kind: edmString, s: x}, nil
		case bool:
			return boolValue(x), nil
		case json.Number:
			s := x.String()
			if !strings.ContainsAny(s, ".eE") {
				if i, err := strconv.ParseInt(s, 10, 32); err == nil {
					return value{kind: edmInt32, i: i}, nil
				}
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return bad()
			}
			return value{kind: edmDouble, f: f}, nil
		}
		return bad()
	}
	k, ok := parseEdmKind(annot)
	if !ok {
		return value{}, storage.Errorf(http.StatusBadRequest, "InvalidInput", "The type %q of property %s is not supported.", annot, name)
	}
	v, err := convertValue(k, raw)
	if err != nil {
		return bad()
	}
	return v, nil
}

func convertValue(k edmKind, raw any) (value, error) {
	s, isStr := raw.(string)
	switch k {
	case edmString:
		if isStr {
			return value{kind: k, s: s}, nil
		}
	case edmBool:
		if b, ok := raw.(bool); ok {
			return boolValue(b), nil
		}
		// Azure reads a string typed Edm.Boolean, in any case.
		if isStr && (strings.EqualFold(s, "true") || strings.EqualFold(s, "false")) {
			return boolValue(strings.EqualFold(s, "true")), nil
		}
	case edmInt32:
		// A number, or a string of one: Azure reads both.
		if n, ok := raw.(json.Number); ok {
			s, isStr = n.String(), true
		}
		if isStr {
			i, err := strconv.ParseInt(s, 10, 32)
			return value{kind: k, i: i}, err
		}
	case edmInt64:
		if isStr {
			i, err := strconv.ParseInt(s, 10, 64)
			return value{kind: k, i: i}, err
		}
		if n, ok := raw.(json.Number); ok {
			i, err := strconv.ParseInt(n.String(), 10, 64)
			return value{kind: k, i: i}, err
		}
	case edmDouble:
		if n, ok := raw.(json.Number); ok {
			f, err := strconv.ParseFloat(n.String(), 64)
			return value{kind: k, f: f}, err
		}
		if isStr {
			switch s {
			case "NaN":
				return value{kind: k, f: math.NaN()}, nil
			case "Infinity", "INF":
				return value{kind: k, f: math.Inf(1)}, nil
			case "-Infinity", "-INF":
				return value{kind: k, f: math.Inf(-1)}, nil
			}
			f, err := strconv.ParseFloat(s, 64)
			return value{kind: k, f: f}, err
		}
	case edmDateTime:
		if isStr {
			t, err := parseDateTime(s)
			return value{kind: k, i: t}, err
		}
	case edmGUID:
		if isStr && validGUID(s) {
			return value{kind: k, s: s}, nil
		}
	case edmBinary:
		if isStr {
			b, err := base64.StdEncoding.DecodeString(s)
			return value{kind: k, s: string(b)}, err
		}
	}
	return value{}, errType
}

func boolValue(b bool) value {
	if b {
		return value{kind: edmBool, i: 1}
	}
	return value{kind: edmBool}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// encodeEntity is the on-disk form of an entity's value; the keys live in
// the bbolt key. Layout: version, ts, count, then name/kind/payload per
// property, with uvarint lengths.
func encodeEntity(e *entity) []byte {
	b := make([]byte, 0, 32+e.size())
	b = append(b, 1)
	b = appendVarint(b, e.ts)
	b = appendUvarint(b, uint64(len(e.props)))
	for _, p := range e.props {
		b = appendUvarint(b, uint64(len(p.name)))
		b = append(b, p.name...)
		b = append(b, byte(p.val.kind))
		switch p.val.kind {
		case edmString, edmGUID, edmBinary:
			b = appendUvarint(b, uint64(len(p.val.s)))
			b = append(b, p.val.s...)
		case edmDouble:
			b = appendUvarint(b, math.Float64bits(p.val.f))
		default:
			b = appendVarint(b, p.val.i)
		}
	}
	return b
}

func decodeEntity(pk, rk string, b []byte) (*entity, error) {
	d := decoder{b: b}
	if d.byte() != 1 {
		return nil, fmt.Errorf("table: decode entity %q/%q: unknown version", pk, rk)
	}
	e := &entity{pk: pk, rk: rk, ts: d.varint()}
	n := d.uvarint()
	if n > maxCustomProps {
		return nil, fmt.Errorf("table: decode entity %q/%q: %d properties", pk, rk, n)
	}
	e.props = make([]property, n)
	for i := range e.props {
		p := &e.props[i]
		p.name = d.str()
		p.val.kind = edmKind(d.byte())
		switch p.val.kind {
		case edmString, edmGUID, edmBinary:
			p.val.s = d.str()
		case edmDouble:
			p.val.f = math.Float64frombits(d.uvarint())
		default:
			p.val.i = d.varint()
		}
	}
	if d.err {
		return nil, fmt.Errorf("table: decode entity %q/%q: truncated", pk, rk)
	}
	return e, nil
}
