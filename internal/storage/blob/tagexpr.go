package blob

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
)

// Tag expressions: the where parameter of Find Blobs by Tags and the
// x-ms-if-tags (and x-ms-source-if-tags) condition of blob operations.
// Keys are in double quotes, values in single quotes, compared as strings
// (lexicographically, case-sensitive):
//
//	"Project" = 'Contoso' AND "Date" >= '2020-01-01' AND @container = 'logs'
//
// Find Blobs by Tags takes =, >, >=, <, <= joined by AND, and @container =
// to scope an account-wide search to one container. A condition also takes
// <>, OR and parentheses, and no @container.

// tagTerm is one comparison: "key" op 'value'; key "@container" for the
// container scope.
type tagTerm struct {
	key, op, value string
}

// eval reports whether tags satisfy the term; a blob without the key
// satisfies no comparison on it (as SQL's NULL).
func (t tagTerm) eval(tags map[string]string) bool {
	v, ok := tags[t.key]
	if !ok {
		return false
	}
	switch t.op {
	case "=":
		return v == t.value
	case "<>":
		return v != t.value
	case ">":
		return v > t.value
	case ">=":
		return v >= t.value
	case "<":
		return v < t.value
	case "<=":
		return v <= t.value
	}
	return false
}

// tagExpr is a parsed expression: a term, or an AND or OR of expressions.
type tagExpr struct {
	term *tagTerm
	or   bool
	kids []*tagExpr
}

func (e *tagExpr) eval(tags map[string]string) bool {
	if e.term != nil {
		return e.term.eval(tags)
	}
	for _, k := range e.kids {
		if k.eval(tags) == e.or {
			return e.or
		}
	}
	return !e.or
}

// terms returns the terms of an expression that is a conjunction (all that
// Find Blobs by Tags accepts).
func (e *tagExpr) terms() []tagTerm {
	if e.term != nil {
		return []tagTerm{*e.term}
	}
	var out []tagTerm
	for _, k := range e.kids {
		out = append(out, k.terms()...)
	}
	return out
}

// maxTagExprLen bounds an expression's length (Azure's limit on x-ms-if-tags
// and where is the request's 8 KiB of headers or URI; this is well within).
const maxTagExprLen = 4096

type tagParser struct {
	s    string
	pos  int
	cond bool // an x-ms-if-tags condition rather than a where
}

// parseTagCondition parses an x-ms-if-tags value; a malformed one is 400
// InvalidHeaderValue naming the header.
func parseTagCondition(header, v string) (*tagExpr, error) {
	p := &tagParser{s: v, cond: true}
	e, err := p.parse()
	if err != nil {
		se := storage.Errorf(http.StatusBadRequest, "InvalidHeaderValue", "The value for the header %s is not a valid tag expression: %v.", header, err)
		se.Header = http.Header{"X-Ms-Invalid-Header-Name": {header}}
		return nil, se
	}
	return e, nil
}

// parseTagQuery parses the where of Find Blobs by Tags into its terms; a
// malformed one is 400 InvalidQueryParameterValue.
func parseTagQuery(v string) ([]tagTerm, error) {
	p := &tagParser{s: v}
	e, err := p.parse()
	if err == nil {
		err = checkQueryTerms(e.terms())
	}
	if err != nil {
		return nil, storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue",
			"Value for one of the query parameters specified in the request URI is invalid: where: %v.", err)
	}
	return e.terms(), nil
}

// checkQueryTerms applies the rules Azure documents for where: at least
// one tag comparison, at most one @container and only with =, and no two
// same-sided ranges on one key ("Rank" > '1' AND "Rank" >= '2').
func checkQueryTerms(terms []tagTerm) error {
	containers, tagTerms := 0, 0
	sides := map[string]bool{}
	for _, t := range terms {
		if t.key == "@container" {
			containers++
			if t.op != "=" {
				return fmt.Errorf("@container takes only =")
			}
			continue
		}
		tagTerms++
		side := ""
		switch t.op {
		case ">", ">=":
			side = ">"
		case "<", "<=":
			side = "<"
		}
		if side != "" {
			if sides[t.key+side] {
				return fmt.Errorf("two ranges on the same side of %q", t.key)
			}
			sides[t.key+side] = true
		}
	}
	if containers > 1 {
		return fmt.Errorf("more than one @container")
	}
	if tagTerms == 0 {
		return fmt.Errorf("no tag comparison")
	}
	return nil
}

func (p *tagParser) parse() (*tagExpr, error) {
	if len(p.s) > maxTagExprLen {
		return nil, fmt.Errorf("longer than %d characters", maxTagExprLen)
	}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at %d", p.rest(8), p.pos)
	}
	return e, nil
}

func (p *tagParser) or() (*tagExpr, error) {
	e, err := p.and()
	if err != nil {
		return nil, err
	}
	if !p.cond || !p.keyword("OR") {
		return e, nil
	}
	out := &tagExpr{or: true, kids: []*tagExpr{e}}
	for {
		k, err := p.and()
		if err != nil {
			return nil, err
		}
		out.kids = append(out.kids, k)
		if !p.keyword("OR") {
			return out, nil
		}
	}
}

func (p *tagParser) and() (*tagExpr, error) {
	e, err := p.primary()
	if err != nil {
		return nil, err
	}
	if !p.keyword("AND") {
		return e, nil
	}
	out := &tagExpr{kids: []*tagExpr{e}}
	for {
		k, err := p.primary()
		if err != nil {
			return nil, err
		}
		out.kids = append(out.kids, k)
		if !p.keyword("AND") {
			return out, nil
		}
	}
}

func (p *tagParser) primary() (*tagExpr, error) {
	p.space()
	if p.cond && p.peek('(') {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.peek(')') {
			return nil, fmt.Errorf("missing ) at %d", p.pos)
		}
		p.pos++
		return e, nil
	}
	var t tagTerm
	switch {
	case p.peek('"'):
		k, err := p.quoted('"')
		if err != nil {
			return nil, err
		}
		if err := checkTagText(k, 1, maxTagKeyLen); err != nil {
			return nil, fmt.Errorf("tag key %q: %v", k, err)
		}
		t.key = k
	case !p.cond && strings.HasPrefix(p.s[p.pos:], "@container"):
		p.pos += len("@container")
		t.key = "@container"
	default:
		return nil, fmt.Errorf("expected a quoted tag key at %d, found %q", p.pos, p.rest(8))
	}
	p.space()
	for _, op := range []string{"<>", ">=", "<=", "=", ">", "<"} {
		if strings.HasPrefix(p.s[p.pos:], op) && (op != "<>" || p.cond) {
			t.op = op
			p.pos += len(op)
			break
		}
	}
	if t.op == "" {
		return nil, fmt.Errorf("expected an operator at %d, found %q", p.pos, p.rest(8))
	}
	p.space()
	if !p.peek('\'') {
		return nil, fmt.Errorf("expected a quoted value at %d, found %q", p.pos, p.rest(8))
	}
	v, err := p.quoted('\'')
	if err != nil {
		return nil, err
	}
	if t.key == "@container" {
		if validContainerName(v) != nil {
			return nil, fmt.Errorf("%q is no container name", v)
		}
	} else if err := checkTagText(v, 0, maxTagValueLen); err != nil {
		return nil, fmt.Errorf("tag value %q: %v", v, err)
	}
	t.value = v
	return &tagExpr{term: &t}, nil
}

// quoted reads a string between q characters; tag text cannot hold quotes,
// so there is no escape.
func (p *tagParser) quoted(q byte) (string, error) {
	start := p.pos + 1
	end := strings.IndexByte(p.s[start:], q)
	if end < 0 {
		return "", fmt.Errorf("unterminated %c at %d", q, p.pos)
	}
	p.pos = start + end + 1
	return p.s[start : start+end], nil
}

// keyword consumes AND or OR (any case) followed by a space or a quote or
// parenthesis.
func (p *tagParser) keyword(w string) bool {
	p.space()
	rest := p.s[p.pos:]
	if len(rest) <= len(w) || !strings.EqualFold(rest[:len(w)], w) {
		return false
	}
	switch rest[len(w)] {
	case ' ', '\t', '"', '(', '@':
		p.pos += len(w)
		return true
	}
	return false
}

func (p *tagParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *tagParser) peek(b byte) bool { return p.pos < len(p.s) && p.s[p.pos] == b }

func (p *tagParser) rest(n int) string { return p.s[p.pos:min(len(p.s), p.pos+n)] }
