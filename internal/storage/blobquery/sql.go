package blobquery

import (
	"fmt"
	"strconv"
	"strings"
)

// Query is a parsed SQL expression.
type Query struct {
	Star  bool     // SELECT *
	Count bool     // SELECT COUNT(*)
	Cols  []column // SELECT a, _2, "b c"
	Where expr     // nil: every record
	Limit int64    // -1: no limit
}

// column names a value of a record: an ordinal (_N, from 1) or a name
// (a header's, or a JSON field's, dotted for nested objects).
type column struct {
	ordinal int
	name    string   // as written, dots and all
	path    []string // the name's parts: one, or a dotted path's
}

func (c column) String() string {
	if c.ordinal > 0 {
		return "_" + strconv.Itoa(c.ordinal)
	}
	return c.name
}

// SyntaxError is an expression the package cannot run: malformed, or
// outside the subset it implements.
type SyntaxError struct {
	Pos int
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("at character %d: %s", e.Pos+1, e.Msg)
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tQuoted // "name"
	tString // 'text'
	tNumber
	tOp // = != <> < <= > >= ( ) , * ; .
)

type token struct {
	kind tokKind
	text string
	pos  int
}

func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			j, text := i+1, strings.Builder{}
			for {
				if j >= len(s) {
					return nil, &SyntaxError{i, "unterminated quotation"}
				}
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						text.WriteByte(c)
						j += 2
						continue
					}
					break
				}
				text.WriteByte(s[j])
				j++
			}
			kind := tString
			if c == '"' {
				kind = tQuoted
			}
			out = append(out, token{kind, text.String(), i})
			i = j + 1
		case c >= '0' && c <= '9' || c == '-' && i+1 < len(s) && (s[i+1] >= '0' && s[i+1] <= '9' || s[i+1] == '.') || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				(s[j] == '-' || s[j] == '+') && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			out = append(out, token{tNumber, s[i:j], i})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			out = append(out, token{tIdent, s[i:j], i})
			i = j
		default:
			op := string(c)
			if i+1 < len(s) {
				if two := s[i : i+2]; two == "!=" || two == "<>" || two == "<=" || two == ">=" {
					op = two
				}
			}
			if !strings.Contains("=<>!=(),*;.", op[:1]) || op == "!" {
				return nil, &SyntaxError{i, fmt.Sprintf("unexpected %q", op)}
			}
			out = append(out, token{tOp, op, i})
			i += len(op)
		}
	}
	return append(out, token{tEOF, "", len(s)}), nil
}

// reserved are the words of the query language this package does not
// implement; a query using one is refused with its name.
var reserved = map[string]bool{
	"IS": true, "IN": true, "BETWEEN": true, "LIKE": true, "CAST": true, "NULL": true, "AS": true,
	"SUM": true, "AVG": true, "MIN": true, "MAX": true, "DISTINCT": true, "GROUP": true, "ORDER": true,
	"JOIN": true, "UNION": true, "CASE": true, "EXISTS": true,
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) keyword(w string) bool {
	if t := p.peek(); t.kind == tIdent && strings.EqualFold(t.text, w) {
		p.i++
		return true
	}
	return false
}

func (p *parser) op(o string) bool {
	if t := p.peek(); t.kind == tOp && t.text == o {
		p.i++
		return true
	}
	return false
}

func (p *parser) fail(msg string, args ...any) error {
	return &SyntaxError{p.peek().pos, fmt.Sprintf(msg, args...)}
}

func (p *parser) expect(o string) error {
	if !p.op(o) {
		return p.fail("expected %q", o)
	}
	return nil
}

// Parse parses a query acceleration SQL expression; an error is a
// *SyntaxError.
func Parse(s string) (*Query, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	q := &Query{Limit: -1}
	if !p.keyword("SELECT") {
		return nil, p.fail("a query starts with SELECT")
	}
	switch {
	case p.op("*"):
		q.Star = true
	case p.peek().kind == tIdent && strings.EqualFold(p.peek().text, "COUNT") && p.toks[p.i+1].text == "(":
		p.i += 2
		if err := p.expect("*"); err != nil {
			return nil, p.fail("only COUNT(*) is supported")
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		q.Count = true
	default:
		for {
			col, err := p.column()
			if err != nil {
				return nil, err
			}
			q.Cols = append(q.Cols, col)
			if !p.op(",") {
				break
			}
		}
		if len(q.Cols) > 49 {
			// As in Azure: past 49 columns, SELECT *.
			return nil, p.fail("at most 49 columns may be selected")
		}
	}
	if !p.keyword("FROM") {
		return nil, p.fail("expected FROM")
	}
	if t := p.next(); t.kind != tIdent || !strings.EqualFold(t.text, "BlobStorage") {
		return nil, &SyntaxError{t.pos, "the table must be BlobStorage"}
	}
	if t := p.peek(); t.kind == tOp && (t.text == "." || t.text == "(") || t.kind == tIdent && !isClause(t.text) {
		return nil, p.fail("table descriptors and aliases are not supported")
	}
	if p.keyword("WHERE") {
		if q.Where, err = p.or(); err != nil {
			return nil, err
		}
	}
	if p.keyword("LIMIT") {
		t := p.next()
		n, err := strconv.ParseInt(t.text, 10, 64)
		if t.kind != tNumber || err != nil || n < 0 {
			return nil, &SyntaxError{t.pos, "LIMIT takes a whole number"}
		}
		q.Limit = n
	}
	p.op(";")
	if t := p.peek(); t.kind != tEOF {
		if reserved[strings.ToUpper(t.text)] {
			return nil, p.fail("%s is not supported", strings.ToUpper(t.text))
		}
		return nil, p.fail("unexpected %q", t.text)
	}
	return q, nil
}

func isClause(w string) bool {
	return strings.EqualFold(w, "WHERE") || strings.EqualFold(w, "LIMIT")
}

func (p *parser) column() (column, error) {
	t := p.next()
	switch t.kind {
	case tQuoted:
		return column{name: t.text, path: []string{t.text}}, nil
	case tIdent:
		if reserved[strings.ToUpper(t.text)] || p.peek().text == "(" {
			return column{}, &SyntaxError{t.pos, fmt.Sprintf("%s is not supported", t.text)}
		}
		name, path := t.text, []string{t.text}
		for p.op(".") {
			n := p.next()
			if n.kind != tIdent && n.kind != tQuoted {
				return column{}, &SyntaxError{n.pos, "expected a field name after '.'"}
			}
			name += "." + n.text
			path = append(path, n.text)
		}
		if len(name) > 1 && name[0] == '_' {
			if n, err := strconv.Atoi(name[1:]); err == nil {
				if n < 1 {
					return column{}, &SyntaxError{t.pos, "column ordinals start at _1"}
				}
				return column{ordinal: n}, nil
			}
		}
		return column{name: name, path: path}, nil
	}
	return column{}, &SyntaxError{t.pos, fmt.Sprintf("expected a column, found %q", t.text)}
}

// expr is a condition; it evaluates to true, false or unknown (a
// comparison with a missing value or a value of another type).
type expr interface {
	eval(r record) (tri, error)
}

type tri int8

// Ordered as Kleene's logic orders them: AND is the least, OR the
// greatest.
const (
	no tri = iota
	unknown
	yes
)

func (p *parser) or() (expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
	return l, nil
}

func (p *parser) and() (expr, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
	return l, nil
}

func (p *parser) not() (expr, error) {
	if p.keyword("NOT") {
		e, err := p.not()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	if p.op("(") {
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		return e, p.expect(")")
	}
	return p.comparison()
}

var comparators = map[string]bool{"=": true, "!=": true, "<>": true, "<": true, "<=": true, ">": true, ">=": true}

func (p *parser) comparison() (expr, error) {
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	if t.kind != tOp || !comparators[t.text] {
		if t.kind == tIdent && reserved[strings.ToUpper(t.text)] {
			return nil, p.fail("%s is not supported", strings.ToUpper(t.text))
		}
		return nil, p.fail("expected a comparison (=, !=, <>, <, <=, >, >=)")
	}
	p.i++
	r, err := p.operand()
	if err != nil {
		return nil, err
	}
	return cmpExpr{op: t.text, l: l, r: r}, nil
}

// operand is a column or a literal.
type operand struct {
	col *column
	lit value
}

func (p *parser) operand() (operand, error) {
	t := p.peek()
	switch {
	case t.kind == tString:
		p.i++
		return operand{lit: strValue(t.text)}, nil
	case t.kind == tNumber:
		p.i++
		n, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return operand{}, &SyntaxError{t.pos, fmt.Sprintf("%q is no number", t.text)}
		}
		return operand{lit: value{kind: vNum, n: n, s: t.text}}, nil
	case t.kind == tIdent && (strings.EqualFold(t.text, "TRUE") || strings.EqualFold(t.text, "FALSE")):
		p.i++
		return operand{lit: value{kind: vBool, b: strings.EqualFold(t.text, "TRUE")}}, nil
	}
	c, err := p.column()
	if err != nil {
		return operand{}, err
	}
	return operand{col: &c}, nil
}
