// Package servicemodel reads the service model a user writes (YAML) into an
// api.ServiceSpec. Unlike a plain yaml.Unmarshal it refuses unknown fields
// and names every problem by its field path ("roles[0].helth: unknown
// field"), so a typo is an error rather than a silently ignored knob.
package servicemodel

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/weftcloud/weft/api"
)

// Parse reads a service model, fills its defaults and validates it as the
// controller would: process roles must name an uploaded package
// ("sha256:<hex>"). Every error is an *api.Error with CodeInvalid whose
// message names the fields at fault.
func Parse(data []byte) (api.ServiceSpec, error) {
	spec, err := decode(data)
	if err != nil {
		return api.ServiceSpec{}, err
	}
	spec.SetDefaults()
	if err := spec.Validate(); err != nil {
		return api.ServiceSpec{}, err
	}
	return spec, nil
}

// Load reads the service model at path. A process role's package may be a
// folder there, relative to the model's own folder; Load checks each is a
// directory and returns role index -> directory for the caller to pack and
// upload (and then replace by the digest before deploying).
func Load(path string) (api.ServiceSpec, map[int]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return api.ServiceSpec{}, nil, err
	}
	spec, err := decode(data)
	if err != nil {
		return api.ServiceSpec{}, nil, withFile(path, err)
	}
	spec.SetDefaults()
	if err := spec.ValidateLocal(); err != nil {
		return api.ServiceSpec{}, nil, withFile(path, err)
	}
	dirs := map[int]string{}
	var problems []string
	for i, r := range spec.Roles {
		if r.Runtime != api.RuntimeProcess || IsDigest(r.Package) {
			continue
		}
		dir := r.Package
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(path), dir)
		}
		fi, err := os.Stat(dir)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("roles[%d].package: %s: no such folder", i, dir))
		case !fi.IsDir():
			problems = append(problems, fmt.Sprintf("roles[%d].package: %s is not a folder", i, dir))
		default:
			dirs[i] = dir
		}
	}
	if len(problems) > 0 {
		return api.ServiceSpec{}, nil, withFile(path, api.Errorf(api.CodeInvalid, "%s", strings.Join(problems, "; ")))
	}
	return spec, dirs, nil
}

// IsDigest reports whether a role's package names an uploaded package
// rather than a folder.
func IsDigest(pkg string) bool { return strings.HasPrefix(pkg, "sha256:") }

func withFile(path string, err error) error {
	var e *api.Error
	if errors.As(err, &e) {
		return &api.Error{Code: e.Code, Message: path + ": " + e.Message}
	}
	return fmt.Errorf("%s: %w", path, err)
}

// decode turns YAML into a spec without defaults or validation.
func decode(data []byte) (api.ServiceSpec, error) {
	var spec api.ServiceSpec
	if err := Decode(data, &spec, "the service model"); err != nil {
		return api.ServiceSpec{}, err
	}
	return spec, nil
}

// Decode reads YAML (or JSON, which YAML reads too) into the struct v
// points to as strictly as a service model: unknown fields, duplicate
// keys and values of the wrong type are refused, each problem named by its
// field path and line in one *api.Error with CodeInvalid. Other files the
// operator writes (a rate card) use it too; what names the document in
// the error for an empty one.
func Decode(data []byte, v any, what string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return api.Errorf(api.CodeInvalid, "%s", syntaxError(data, err))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return api.Errorf(api.CodeInvalid, "%s is empty", what)
	}
	d := &decoder{}
	d.value(doc.Content[0], reflect.ValueOf(v).Elem(), "")
	if len(d.problems) > 0 {
		return api.Errorf(api.CodeInvalid, "%s", strings.Join(d.problems, "; "))
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError words a YAML syntax error so that it names the offending
// line. For a line indented to fit no block, the yaml package names the
// line where the enclosing block starts ("line 2: did not find expected key"
// for a bad indent on line 40). The offending line is where the document
// stops parsing: the first N such that its first N-1 lines parse and its
// first N do not, with the same complaint. A binary search finds such an N
// in a few parses.
func syntaxError(data []byte, err error) string {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	reported, problem := m[1], m[2]
	lines := strings.SplitAfter(string(data), "\n")
	// fails says whether the first n lines fail to parse, and with what.
	fails := func(n int) (string, bool) {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &doc); err != nil {
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				return m[2], true
			}
			return err.Error(), true
		}
		return "", false
	}
	lo, hi := 0, len(lines) // the first lo lines parse; the first hi do not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if _, bad := fails(mid); bad {
			hi = mid
		} else {
			lo = mid
		}
	}
	if got, _ := fails(hi); got != problem || strconv.Itoa(hi) == reported {
		return "line " + reported + ": " + problem
	}
	msg := fmt.Sprintf("line %d: %s", hi, problem)
	if strings.Contains(problem, "expected key") || strings.Contains(problem, "'-' indicator") {
		msg += " (check this line's indentation)"
	}
	return msg
}

// maxValues bounds the values a model decodes to. YAML aliases let a few
// bytes stand for a large subtree (a list of a thousand *roles, each with a
// command that is an alias of a thousand words, is a million strings from
// 10 KB); the yaml package bounds that only when it decodes into Go values
// itself, not for the node tree walked here. Real models have a few hundred
// values.
const maxValues = 100_000

// decoder walks a YAML node tree against a Go value by its yaml tags,
// collecting problems by field path.
type decoder struct {
	problems []string
	values   int
}

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	if path == "" {
		path = "(top level)"
	}
	d.problems = append(d.problems, fmt.Sprintf("%s: line %d: ", path, n.Line)+fmt.Sprintf(format, args...))
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if d.values++; d.values > maxValues {
		if d.values == maxValues+1 {
			d.fail(path, n, "the model expands to more than %d values (through aliases?)", maxValues)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return // leave the zero value: the default applies
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			d.fail(path, n, "want a single value, not %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.fail(path, n, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(path, n, "want a list, not %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(path, n, "want a mapping, not %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kpath := join(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				d.fail(path, k, "keys must be plain names")
				continue
			}
			if seen[k.Value] {
				d.fail(kpath, k, "appears twice")
				continue
			}
			seen[k.Value] = true
			elem := reflect.New(v.Type().Elem()).Elem()
			d.value(val, elem, kpath)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(path, n, "want a string, not %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(path, n, "cannot use %s as a number", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
			d.fail(path, n, "cannot use %s as a number", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.fail(path, n, "cannot use %s as true or false", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Interface:
		// Free-form values (an extension's settings): any YAML that is
		// also JSON, as the controller receives it.
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(path, n, "%v", err)
			return
		}
		if _, err := json.Marshal(x); err != nil {
			d.fail(path, n, "not a JSON value (mapping keys must be strings)")
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.fail(path, n, "cannot decode into %s", v.Type())
	}
}

// structure decodes a mapping into a struct, field by yaml tag.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "want a mapping, not %s", describe(n))
		return
	}
	fields := map[string]int{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = i
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kpath := join(path, k.Value)
		idx, ok := fields[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			d.fail(path, k, "keys must be plain names")
		case !ok:
			d.fail(kpath, k, "unknown field")
		case seen[k.Value]:
			d.fail(kpath, k, "appears twice")
		default:
			seen[k.Value] = true
			d.value(val, v.Field(idx), kpath)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names a node's value for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "this value"
}
