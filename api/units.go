package api

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bytes is a size in bytes written as a quantity: "128Mi", "1Gi", "512M",
// "4096". Binary suffixes (Ki, Mi, Gi, Ti) are powers of 1024, decimal ones
// (k, M, G, T) powers of 1000.
type Bytes int64

var byteSuffixes = []struct {
	suffix string
	factor int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseBytes parses a quantity such as "128Mi".
func ParseBytes(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	factor := int64(1)
	num := s
	for _, b := range byteSuffixes {
		if strings.HasSuffix(s, b.suffix) {
			factor, num = b.factor, strings.TrimSuffix(s, b.suffix)
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 || num == "" {
		return 0, fmt.Errorf("invalid size %q (want a number with an optional suffix Ki, Mi, Gi, Ti, k, M, G, T)", s)
	}
	return Bytes(n * float64(factor)), nil
}

var binaryUnits = []struct {
	s string
	f int64
}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}}

// String writes a size for people: the largest binary unit it reaches, with
// one decimal when it is not a whole number of them (128Mi, 23.5Gi). It may
// round; MarshalText is exact.
func (b Bytes) String() string {
	for _, u := range binaryUnits {
		if b >= Bytes(u.f) || -b >= Bytes(u.f) {
			if b%Bytes(u.f) == 0 {
				return strconv.FormatInt(int64(b)/u.f, 10) + u.s
			}
			return strconv.FormatFloat(float64(b)/float64(u.f), 'f', 1, 64) + u.s
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText writes the value exactly, with the largest binary suffix that
// divides it (24683620Ki), so that JSON and YAML read back the same bytes.
func (b Bytes) MarshalText() ([]byte, error) {
	for _, u := range binaryUnits {
		if b != 0 && int64(b)%u.f == 0 {
			return []byte(strconv.FormatInt(int64(b)/u.f, 10) + u.s), nil
		}
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}

func (b *Bytes) UnmarshalText(text []byte) error {
	v, err := ParseBytes(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Duration is a time.Duration written as "1s", "500ms" in YAML and JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 500ms, 1s, 2m)", string(text))
	}
	*d = Duration(v)
	return nil
}
