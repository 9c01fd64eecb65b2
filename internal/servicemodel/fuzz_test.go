package servicemodel

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/weftcloud/weft/api"
)

// aliasBomb is a model of about 10 KB whose aliases stand for a million
// strings: a thousand roles, each an alias of one whose command is an
// alias of a thousand words.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("name: bomb\nroles:\n  - &r {name: a, kind: worker, runtime: container, image: x, command: &c [")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("w")
	}
	b.WriteString("]}\n")
	for range 1000 {
		b.WriteString("  - *r\n")
	}
	return b.String()
}

// TestAliasExpansionBounded: a small model whose aliases expand to a
// million values is refused at once, naming the problem, rather than
// decoded.
func TestAliasExpansionBounded(t *testing.T) {
	start := time.Now()
	_, err := Parse([]byte(aliasBomb()))
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("Parse of an alias bomb = %.300v, want the expansion refused", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refused after %v", d)
	}
	// Aliases within reason still work.
	spec, err := Parse([]byte("name: a\nroles:\n  - &r {name: a, kind: worker, runtime: container, image: x, settings: &s {A: b}}\n  - {name: b, kind: worker, runtime: container, image: x, settings: *s}\n"))
	if err != nil || spec.Roles[1].Settings["A"] != "b" {
		t.Errorf("a model with an alias: %v, %+v", err, spec)
	}
}

// values counts the strings, numbers and flags of a spec's lists and maps,
// what an alias can multiply.
func values(s api.ServiceSpec) int {
	n := 0
	for _, r := range s.Roles {
		n += 1 + len(r.Command) + len(r.Endpoints) + len(r.Settings)
	}
	return n
}

// FuzzParse reads any bytes as a service model. Properties: a bad model
// is an api.Error with CodeInvalid, never a panic; what a model decodes to
// is bounded (maxValues), whatever its aliases; and an accepted model,
// written back as YAML, parses to the same spec.
func FuzzParse(f *testing.F) {
	f.Add([]byte(strings.Replace(good, "PKG", digest, 1)))
	f.Add([]byte("name: hello\nroles:\n  - name: web\n    kind: web\n    runtime: container\n    image: nginx\n    instances: 2\n    endpoints: [{name: http, protocol: http, port: 80}]\n    health: {tcp: {endpoint: http}}\n"))
	f.Add([]byte("name: x\nroles:\n  - name: a\n    helth: 1\n    instances: many\n"))
	f.Add([]byte("name: a\nroles:\n  - &r {name: a, kind: worker, runtime: container, image: x, settings: &s {A: b}}\n  - {name: b, kind: worker, runtime: container, image: x, settings: *s}\n"))
	f.Add([]byte("name: [hello"))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(data)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("error %v (%T) is not an invalid-model api.Error", err, err)
			}
			return
		}
		if n := values(spec); n > maxValues {
			t.Fatalf("the model decoded to %d values", n)
		}
		out, err := yaml.Marshal(spec)
		if err != nil {
			t.Fatalf("the spec does not write as YAML: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("the spec written back is refused: %v\n%s", err, out)
		}
		if diff := cmp.Diff(spec, again); diff != "" {
			t.Fatalf("the spec changed on the way back (-first +again):\n%s\n%s", diff, out)
		}
	})
}
