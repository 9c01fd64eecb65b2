package table

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The $filter language is the subset of OData v3 the Table service accepts:
// comparisons (eq ne gt ge lt le) between a property and a literal, joined
// by and/or, negated by not, grouped by parentheses. Precedence, tightest
// first: not, comparison, and, or.

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokIdent
	tokLiteral
	tokLParen
	tokRParen
)

type token struct {
	kind tokKind
	text string // identifier or keyword
	lit  value
	pos  int
}

// maxFilterDepth bounds nesting so a hostile filter cannot exhaust the
// stack of the recursive-descent parser.
const maxFilterDepth = 100

// A filter is evaluated on every entity a query scans (up to maxScan per
// request), so its size is bounded. Azure allows 15 discrete comparisons in
// a $filter; Weft allows more, so that any filter Azure accepts (keys of
// up to 1 KiB included) and filters a little past its limit still work:
//   - maxFilterLength: 32 KiB of filter text, checked before lexing;
//   - maxFilterTerms: 100 terms (comparisons, or bare Boolean operands
//     such as "Active"), counted while parsing, which stops at the first
//     term over.
//
// Over either, the query is 400 InvalidInput, as Azure answers.
const (
	maxFilterLength = 32 << 10
	maxFilterTerms  = 100
)

// lex splits a filter into tokens. Keywords come out as identifiers; the
// parser tells them apart by position.
func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			toks = append(toks, token{kind: tokLParen, pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tokRParen, pos: i})
			i++
		case c == '\'':
			str, n, err := lexQuoted(s[i:])
			if err != nil {
				return nil, fmt.Errorf("at %d: %w", i, err)
			}
			toks = append(toks, token{kind: tokLiteral, lit: value{kind: edmString, s: str}, pos: i})
			i += n
		case c == '-' || c == '.' || ('0' <= c && c <= '9'):
			v, n, err := lexNumber(s[i:])
			if err != nil {
				return nil, fmt.Errorf("at %d: %w", i, err)
			}
			toks = append(toks, token{kind: tokLiteral, lit: v, pos: i})
			i += n
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			word := s[i:j]
			if j < len(s) && s[j] == '\'' && isLiteralPrefix(word) {
				v, n, err := lexTyped(word, s[j:])
				if err != nil {
					return nil, fmt.Errorf("at %d: %w", i, err)
				}
				toks = append(toks, token{kind: tokLiteral, lit: v, pos: i})
				i = j + n
				continue
			}
			// Azure takes the Boolean literals in any case (True, FALSE).
			switch strings.ToLower(word) {
			case "true":
				toks = append(toks, token{kind: tokLiteral, lit: boolValue(true), pos: i})
			case "false":
				toks = append(toks, token{kind: tokLiteral, lit: boolValue(false), pos: i})
			default:
				toks = append(toks, token{kind: tokIdent, text: word, pos: i})
			}
			i = j
		default:
			return nil, fmt.Errorf("at %d: unexpected character %q", i, c)
		}
	}
	return append(toks, token{kind: tokEOF, pos: len(s)}), nil
}

func isLiteralPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "datetime", "guid", "x", "binary":
		return true
	}
	return false
}

func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

func isIdentPart(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }

// lexQuoted reads a quoted string, in which a doubled quote stands for one, and
// returns the bytes consumed.
func lexQuoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), i + 1, nil
	}
	return "", 0, fmt.Errorf("unterminated string")
}

func lexNumber(s string) (value, int, error) {
	j := 0
	if j < len(s) && s[j] == '-' {
		j++
	}
	isFloat := false
	for j < len(s) {
		c := s[j]
		switch {
		case '0' <= c && c <= '9':
		case c == '.':
			isFloat = true
		case c == 'e' || c == 'E':
			isFloat = true
			if j+1 < len(s) && (s[j+1] == '+' || s[j+1] == '-') {
				j++
			}
		default:
			goto done
		}
		j++
	}
done:
	num := s[:j]
	if num == "" || num == "-" {
		return value{}, 0, fmt.Errorf("bad number")
	}
	// Suffixes: L for Int64; d/D, f/F, m/M mark floating literals.
	if j < len(s) {
		switch s[j] {
		case 'L', 'l':
			if isFloat {
				return value{}, 0, fmt.Errorf("bad Int64 literal %q", s[:j+1])
			}
			i, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				return value{}, 0, fmt.Errorf("bad Int64 literal %q", s[:j+1])
			}
			return value{kind: edmInt64, i: i}, j + 1, nil
		case 'd', 'D', 'f', 'F', 'm', 'M':
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return value{}, 0, fmt.Errorf("bad number %q", num)
			}
			return value{kind: edmDouble, f: f}, j + 1, nil
		}
		if isIdentPart(s[j]) {
			return value{}, 0, fmt.Errorf("bad number %q", s[:j+1])
		}
	}
	if !isFloat {
		i, err := strconv.ParseInt(num, 10, 64)
		if err == nil {
			if i >= math.MinInt32 && i <= math.MaxInt32 {
				return value{kind: edmInt32, i: i}, j, nil
			}
			return value{kind: edmInt64, i: i}, j, nil
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return value{}, 0, fmt.Errorf("bad number %q", num)
	}
	return value{kind: edmDouble, f: f}, j, nil
}

// lexTyped reads prefix'...' literals: datetime, guid, X and binary.
func lexTyped(prefix, s string) (value, int, error) {
	body, n, err := lexQuoted(s)
	if err != nil {
		return value{}, 0, err
	}
	switch strings.ToLower(prefix) {
	case "datetime":
		t, err := parseDateTime(body)
		if err != nil {
			return value{}, 0, fmt.Errorf("bad datetime literal %q", body)
		}
		return value{kind: edmDateTime, i: t}, n, nil
	case "guid":
		if !validGUID(body) {
			return value{}, 0, fmt.Errorf("bad guid literal %q", body)
		}
		return value{kind: edmGUID, s: body}, n, nil
	case "x", "binary":
		b, err := parseHexBinary(body)
		if err != nil {
			return value{}, 0, err
		}
		return value{kind: edmBinary, s: b}, n, nil
	}
	return value{}, 0, fmt.Errorf("unknown literal type %q", prefix)
}

// node is a parsed filter expression.
type node struct {
	op    opKind
	left  *node // and/or/not operand; nil for leaves
	right *node
	prop  string // opProp, and the property side of a comparison
	lit   value  // opLit, and the literal side of a comparison
	cmp   cmpOp  // comparison nodes compare leaf a with leaf b
	a, b  *node
}

type opKind uint8

const (
	opOr opKind = iota + 1
	opAnd
	opNot
	opCmp
	opProp
	opLit
)

type cmpOp uint8

const (
	cmpEq cmpOp = iota + 1
	cmpNe
	cmpGt
	cmpGe
	cmpLt
	cmpLe
)

var cmpOps = map[string]cmpOp{"eq": cmpEq, "ne": cmpNe, "gt": cmpGt, "ge": cmpGe, "lt": cmpLt, "le": cmpLe}

type parser struct {
	toks  []token
	i     int
	depth int
	terms int
}

// parseFilter parses a $filter expression. An empty filter matches all.
// A filter over maxFilterLength bytes or maxFilterTerms terms is an error.
func parseFilter(s string) (*node, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if len(s) > maxFilterLength {
		return nil, fmt.Errorf("table: filter: %d bytes long, over the limit of %d", len(s), maxFilterLength)
	}
	toks, err := lex(s)
	if err != nil {
		return nil, fmt.Errorf("table: filter: %w", err)
	}
	p := &parser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, fmt.Errorf("table: filter: %w", err)
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, fmt.Errorf("table: filter: at %d: unexpected token", t.pos)
	}
	if err := checkBoolean(n); err != nil {
		return nil, fmt.Errorf("table: filter: %w", err)
	}
	return n, nil
}

// checkBoolean refuses a filter, or an operand of and, or and not, that
// cannot be true or false: a literal other than a Boolean, such as the
// "(1)" Azure answers 400 InvalidInput. A property may hold a Boolean, so
// a bare property is taken (it matches entities where it is true).
func checkBoolean(n *node) error {
	switch n.op {
	case opOr, opAnd:
		if err := checkBoolean(n.left); err != nil {
			return err
		}
		return checkBoolean(n.right)
	case opNot:
		return checkBoolean(n.left)
	case opLit:
		if n.lit.kind != edmBool {
			return fmt.Errorf("a %s literal is not a Boolean expression", n.lit.kind)
		}
	}
	return nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) keyword(w string) bool {
	t := p.peek()
	if t.kind == tokIdent && strings.EqualFold(t.text, w) {
		p.i++
		return true
	}
	return false
}

func (p *parser) or() (*node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &node{op: opOr, left: l, right: r}
	}
	return l, nil
}

func (p *parser) and() (*node, error) {
	l, err := p.comparison()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.comparison()
		if err != nil {
			return nil, err
		}
		l = &node{op: opAnd, left: l, right: r}
	}
	return l, nil
}

// comparison parses a comparison or a lone operand ("Active", "not
// Active"), one term of the filter each; a parenthesised group's terms are
// counted inside it.
func (p *parser) comparison() (*node, error) {
	before := p.terms
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	op, ok := cmpOps[strings.ToLower(t.text)]
	if t.kind != tokIdent || !ok {
		if p.terms == before {
			return l, p.term()
		}
		return l, nil
	}
	p.i++
	r, err := p.unary()
	if err != nil {
		return nil, err
	}
	return &node{op: opCmp, cmp: op, a: l, b: r}, p.term()
}

// term counts one term, refusing the filter past maxFilterTerms.
func (p *parser) term() error {
	p.terms++
	if p.terms > maxFilterTerms {
		return fmt.Errorf("more than %d comparisons (Azure allows 15)", maxFilterTerms)
	}
	return nil
}

func (p *parser) unary() (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFilterDepth {
		return nil, fmt.Errorf("expression nested too deeply")
	}
	if p.keyword("not") {
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &node{op: opNot, left: n}, nil
	}
	t := p.next()
	switch t.kind {
	case tokLParen:
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next().kind != tokRParen {
			return nil, fmt.Errorf("at %d: missing )", t.pos)
		}
		return n, nil
	case tokLiteral:
		return &node{op: opLit, lit: t.lit}, nil
	case tokIdent:
		if _, isOp := cmpOps[strings.ToLower(t.text)]; isOp || strings.EqualFold(t.text, "and") || strings.EqualFold(t.text, "or") {
			return nil, fmt.Errorf("at %d: operator %q needs an operand before it", t.pos, t.text)
		}
		return &node{op: opProp, prop: t.text}, nil
	}
	return nil, fmt.Errorf("at %d: expected an operand", t.pos)
}
