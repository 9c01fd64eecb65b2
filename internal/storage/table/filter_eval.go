package table

import "strings"

// record is what a filter reads: an entity, or a table seen as an entity
// with one property, TableName.
type record interface {
	get(name string) (value, bool)
}

// match reports whether r satisfies n; a nil filter matches everything.
// A comparison with a missing property or between incompatible types is
// false, as Azure answers, never an error.
func match(n *node, r record) bool {
	if n == nil {
		return true
	}
	return eval(n, r)
}

func eval(n *node, r record) bool {
	switch n.op {
	case opOr:
		return eval(n.left, r) || eval(n.right, r)
	case opAnd:
		return eval(n.left, r) && eval(n.right, r)
	case opNot:
		return !eval(n.left, r)
	case opCmp:
		a, ok := operand(n.a, r)
		if !ok {
			return false
		}
		b, ok := operand(n.b, r)
		if !ok {
			return false
		}
		c, ok := compareValues(a, b)
		if !ok {
			return false
		}
		switch n.cmp {
		case cmpEq:
			return c == 0
		case cmpNe:
			return c != 0
		case cmpGt:
			return c == 1
		case cmpGe:
			return c == 0 || c == 1
		case cmpLt:
			return c == -1
		case cmpLe:
			return c == 0 || c == -1
		}
		return false
	case opProp, opLit:
		// A bare operand in boolean position: true only for a true Boolean.
		v, ok := operand(n, r)
		return ok && v.kind == edmBool && v.i == 1
	}
	return false
}

func operand(n *node, r record) (value, bool) {
	switch n.op {
	case opLit:
		return n.lit, true
	case opProp:
		return r.get(n.prop)
	}
	// A boolean sub-expression used as an operand, e.g. (A eq 1) eq true.
	return boolValue(eval(n, r)), true
}

// keyRange is a half-open range [lo, hi) of bbolt entity keys; a nil hi
// means no upper bound.
type keyRange struct {
	lo, hi []byte
}

func (k keyRange) empty() bool {
	return k.hi != nil && string(k.lo) >= string(k.hi)
}

// planRange derives from a filter the smallest key range that can hold
// every match, so queries on PartitionKey (and RowKey within one
// partition) seek instead of scanning the table. It is conservative: the
// filter is still evaluated on every entity in the range. It visits each
// node once: a chain of ands is planned as a whole (its conjuncts'
// ranges intersected, then narrowed by its PartitionKey equality and
// RowKey bounds) rather than at every and node of the chain, which made
// planning quadratic in the number of terms.
func planRange(n *node) keyRange {
	if n == nil {
		return keyRange{}
	}
	switch n.op {
	case opAnd:
		cs := conjuncts(n, nil)
		var r keyRange
		for _, c := range cs {
			r = intersect(r, planRange(c))
		}
		// PartitionKey eq 'p' and RowKey ge 'r' narrows to p\0r.
		if pk, ok := pkEquality(cs); ok {
			r = intersect(r, rowBounds(cs, pk))
		}
		return r
	case opOr:
		a, b := planRange(n.left), planRange(n.right)
		if a.empty() {
			return b
		}
		if b.empty() {
			return a
		}
		r := a
		if string(b.lo) < string(r.lo) {
			r.lo = b.lo
		}
		if a.hi == nil || b.hi == nil {
			r.hi = nil
		} else if string(b.hi) > string(r.hi) {
			r.hi = b.hi
		}
		return r
	case opCmp:
		prop, op, lit, ok := keyComparison(n)
		if !ok || prop != "PartitionKey" {
			return keyRange{}
		}
		p := lit.s
		switch op {
		case cmpEq:
			return keyRange{lo: []byte(p + "\x00"), hi: []byte(p + "\x01")}
		case cmpGt:
			return keyRange{lo: []byte(p + "\x01")}
		case cmpGe:
			return keyRange{lo: []byte(p)}
		case cmpLt:
			return keyRange{hi: []byte(p)}
		case cmpLe:
			return keyRange{hi: []byte(p + "\x01")}
		}
	}
	return keyRange{}
}

// intersect is the range of keys in both a and b.
func intersect(a, b keyRange) keyRange {
	r := a
	if string(b.lo) > string(r.lo) {
		r.lo = b.lo
	}
	if b.hi != nil && (r.hi == nil || string(b.hi) < string(r.hi)) {
		r.hi = b.hi
	}
	return r
}

// keyComparison recognises "Key op 'string'" in either order and returns
// the operator as seen from the property's side.
func keyComparison(n *node) (prop string, op cmpOp, lit value, ok bool) {
	if n.op != opCmp {
		return "", 0, value{}, false
	}
	a, b, op := n.a, n.b, n.cmp
	if a.op == opLit && b.op == opProp {
		a, b = b, a
		op = mirror(op)
	}
	if a.op != opProp || b.op != opLit || b.lit.kind != edmString {
		return "", 0, value{}, false
	}
	return a.prop, op, b.lit, true
}

func mirror(op cmpOp) cmpOp {
	switch op {
	case cmpGt:
		return cmpLt
	case cmpGe:
		return cmpLe
	case cmpLt:
		return cmpGt
	case cmpLe:
		return cmpGe
	}
	return op
}

// pkEquality finds a PartitionKey eq 'p' among conjuncts.
func pkEquality(conjuncts []*node) (string, bool) {
	for _, c := range conjuncts {
		if prop, op, lit, ok := keyComparison(c); ok && prop == "PartitionKey" && op == cmpEq {
			return lit.s, true
		}
	}
	return "", false
}

// rowBounds narrows a single partition by the RowKey conjuncts.
func rowBounds(conjuncts []*node, pk string) keyRange {
	lo := []byte(pk + "\x00")
	var hi []byte
	for _, c := range conjuncts {
		prop, op, lit, ok := keyComparison(c)
		if !ok || prop != "RowKey" {
			continue
		}
		k := pk + "\x00" + lit.s
		var l, h string
		switch op {
		case cmpEq:
			l, h = k, k+"\x00"
		case cmpGt:
			l = k + "\x00"
		case cmpGe:
			l = k
		case cmpLt:
			h = k
		case cmpLe:
			h = k + "\x00"
		}
		if l > string(lo) {
			lo = []byte(l)
		}
		if h != "" && (hi == nil || h < string(hi)) {
			hi = []byte(h)
		}
	}
	return keyRange{lo: lo, hi: hi}
}

// conjuncts appends to out the terms of the chain of ands rooted at n, in
// order; n itself when it is not an and.
func conjuncts(n *node, out []*node) []*node {
	if n.op == opAnd {
		return conjuncts(n.right, conjuncts(n.left, out))
	}
	return append(out, n)
}

// tableRecord lets the filter evaluator read a table's name.
type tableRecord string

func (t tableRecord) get(name string) (value, bool) {
	if name == "TableName" {
		return value{kind: edmString, s: string(t)}, true
	}
	return value{}, false
}

// selectList parses $select into property names; nil means all.
func selectList(s string) []string {
	if strings.TrimSpace(s) == "" || strings.TrimSpace(s) == "*" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
