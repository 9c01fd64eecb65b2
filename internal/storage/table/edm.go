package table

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"
)

// edmKind is one of the EDM primitive types the Table service stores.
type edmKind uint8

const (
	edmString edmKind = iota + 1
	edmInt32
	edmInt64
	edmDouble
	edmBool
	edmDateTime
	edmGUID
	edmBinary
)

var edmNames = [...]string{
	edmString:   "Edm.String",
	edmInt32:    "Edm.Int32",
	edmInt64:    "Edm.Int64",
	edmDouble:   "Edm.Double",
	edmBool:     "Edm.Boolean",
	edmDateTime: "Edm.DateTime",
	edmGUID:     "Edm.Guid",
	edmBinary:   "Edm.Binary",
}

func (k edmKind) String() string {
	if int(k) < len(edmNames) && edmNames[k] != "" {
		return edmNames[k]
	}
	return fmt.Sprintf("edm(%d)", uint8(k))
}

func parseEdmKind(s string) (edmKind, bool) {
	for k, n := range edmNames {
		if n != "" && n == s {
			return edmKind(k), true
		}
	}
	return 0, false
}

// value is one typed property value. Strings, GUIDs and binary bytes live
// in s; integers, booleans (0/1) and DateTime ticks live in i; doubles in f.
type value struct {
	kind edmKind
	s    string
	i    int64
	f    float64
}

// DateTime values are kept as .NET-style ticks (100 ns since 0001-01-01
// UTC): that is Azure's precision and range (year 1601 to 9999 fit, which
// Unix nanoseconds would not).
const ticksPerSecond = 10_000_000

var tickEpoch = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func timeToTicks(t time.Time) int64 {
	return (t.Unix()-tickEpoch)*ticksPerSecond + int64(t.Nanosecond()/100)
}

func ticksToTime(ticks int64) time.Time {
	sec := ticks / ticksPerSecond
	rem := ticks % ticksPerSecond
	return time.Unix(sec+tickEpoch, rem*100).UTC()
}

// formatTicks renders a DateTime the way Azure does: RFC 3339 in UTC with
// up to seven fractional digits and trailing zeros trimmed.
func formatTicks(ticks int64) string {
	return ticksToTime(ticks).Format(time.RFC3339Nano)
}

// parseDateTime accepts the RFC 3339 forms clients send; a value without a
// zone is taken as UTC, as Azure does.
func parseDateTime(s string) (int64, error) {
	layouts := []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04"}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return timeToTicks(t.UTC()), nil
		}
	}
	return 0, fmt.Errorf("table: bad DateTime %q", s)
}

// validGUID reports whether s has the 8-4-4-4-12 hex form.
func validGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func parseHexBinary(s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("table: bad binary literal: %w", err)
	}
	return string(b), nil
}

// numeric reports whether k takes part in numeric promotion: an Int32
// property compares with an Int64 or Double literal by value.
func (k edmKind) numeric() bool { return k == edmInt32 || k == edmInt64 || k == edmDouble }

// compareValues orders a and b. ok is false when the types are not
// comparable, which a filter treats as "no match" rather than an error.
func compareValues(a, b value) (c int, ok bool) {
	if a.kind.numeric() && b.kind.numeric() {
		if a.kind != edmDouble && b.kind != edmDouble {
			return cmp.Compare(a.i, b.i), true
		}
		af, bf := a.float(), b.float()
		if math.IsNaN(af) || math.IsNaN(bf) {
			// NaN equals nothing, itself included; any answer but "equal"
			// keeps eq false and ne true.
			return 2, true
		}
		return cmp.Compare(af, bf), true
	}
	if a.kind != b.kind {
		return 0, false
	}
	switch a.kind {
	case edmString:
		return strings.Compare(a.s, b.s), true
	case edmGUID:
		return strings.Compare(strings.ToLower(a.s), strings.ToLower(b.s)), true
	case edmBinary:
		return bytes.Compare([]byte(a.s), []byte(b.s)), true
	case edmBool, edmDateTime:
		return cmp.Compare(a.i, b.i), true
	}
	return 0, false
}

func (v value) float() float64 {
	if v.kind == edmDouble {
		return v.f
	}
	return float64(v.i)
}
