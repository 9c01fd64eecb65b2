package blobquery

import (
	"strconv"
	"strings"
)

type vKind int8

const (
	vNull vKind = iota
	vStr
	vNum
	vBool
	vRaw // a JSON object or array: shown as it is, compared with nothing
)

// value is one value of a record or a literal. Values read from CSV are
// strings, cast to numbers or booleans where compared with one, as the
// query acceleration reference says.
type value struct {
	kind vKind
	s    string // a string, a number's text, a raw value's JSON
	n    float64
	b    bool
}

func strValue(s string) value { return value{kind: vStr, s: s} }

// text is the value as delimited text shows it.
func (v value) text() string {
	switch v.kind {
	case vBool:
		return strconv.FormatBool(v.b)
	case vNull:
		return ""
	}
	return v.s
}

func (v value) number() (float64, bool) {
	switch v.kind {
	case vNum:
		return v.n, true
	case vStr:
		n, err := strconv.ParseFloat(strings.TrimSpace(v.s), 64)
		return n, err == nil
	}
	return 0, false
}

func (v value) boolean() (bool, bool) {
	switch v.kind {
	case vBool:
		return v.b, true
	case vStr:
		switch strings.ToLower(strings.TrimSpace(v.s)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

// record is one input record.
type record interface {
	// get returns the value of c; an error is a *recordError (a CSV
	// record without that column).
	get(c column) (value, error)
}

// recordError is a problem with one record: the record is left out and
// the answer carries a non-fatal error record with this name.
type recordError struct {
	name, desc string
}

func (e *recordError) Error() string { return e.name + ": " + e.desc }

type cmpExpr struct {
	op   string
	l, r operand
}

func (o operand) eval(r record) (value, error) {
	if o.col != nil {
		return r.get(*o.col)
	}
	return o.lit, nil
}

func (e cmpExpr) eval(r record) (tri, error) {
	a, err := e.l.eval(r)
	if err != nil {
		return unknown, err
	}
	b, err := e.r.eval(r)
	if err != nil {
		return unknown, err
	}
	c, ok := compare(a, b)
	if !ok {
		return unknown, nil
	}
	var t bool
	switch e.op {
	case "=":
		t = c == 0
	case "!=", "<>":
		t = c != 0
	case "<":
		t = c < 0
	case "<=":
		t = c <= 0
	case ">":
		t = c > 0
	case ">=":
		t = c >= 0
	}
	if t {
		return yes, nil
	}
	return no, nil
}

// compare orders a and b: as numbers when either is one, as booleans
// when either is one, else as strings. ok is false when they cannot be
// compared (a null, a raw value, a string that is no number).
func compare(a, b value) (int, bool) {
	if a.kind == vNull || b.kind == vNull || a.kind == vRaw || b.kind == vRaw {
		return 0, false
	}
	switch {
	case a.kind == vNum || b.kind == vNum:
		x, ok1 := a.number()
		y, ok2 := b.number()
		if !ok1 || !ok2 {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case a.kind == vBool || b.kind == vBool:
		x, ok1 := a.boolean()
		y, ok2 := b.boolean()
		if !ok1 || !ok2 {
			return 0, false
		}
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		}
		return 1, true
	}
	return strings.Compare(a.s, b.s), true
}

type andExpr struct{ l, r expr }

func (e andExpr) eval(r record) (tri, error) {
	a, err := e.l.eval(r)
	if err != nil || a == no {
		return a, err
	}
	b, err := e.r.eval(r)
	if err != nil {
		return b, err
	}
	return min(a, b), nil
}

type orExpr struct{ l, r expr }

func (e orExpr) eval(r record) (tri, error) {
	a, err := e.l.eval(r)
	if err != nil || a == yes {
		return a, err
	}
	b, err := e.r.eval(r)
	if err != nil {
		return b, err
	}
	return max(a, b), nil
}

type notExpr struct{ e expr }

func (e notExpr) eval(r record) (tri, error) {
	a, err := e.e.eval(r)
	switch {
	case err != nil || a == unknown:
		return a, err
	case a == yes:
		return no, nil
	}
	return yes, nil
}
