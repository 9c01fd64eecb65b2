package servicemodel

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
)

// TestEveryFieldIsDocumented: every field a service model may set in YAML
// is described in docs/service-model.md, as `field` or in an example as
// field: — a field added to api.ServiceSpec without its documentation
// fails here.
func TestEveryFieldIsDocumented(t *testing.T) {
	data, err := os.ReadFile("../../docs/service-model.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				t.Errorf("%s.%s has no yaml tag", typ, f.Name)
				continue
			}
			field := strings.TrimPrefix(path+"."+name, ".")
			if !strings.Contains(doc, name+":") && !strings.Contains(doc, "`"+name+"`") {
				t.Errorf("docs/service-model.md does not describe %s (%s.%s)", field, typ, f.Name)
			}
			walk(field, f.Type)
		}
	}
	walk("", reflect.TypeOf(api.ServiceSpec{}))
	if len(seen) < 5 {
		t.Fatalf("walked %d types: the walk is broken", len(seen))
	}
}
