// Package weft_test checks the layout docs/architecture.md describes:
// every package says what it is, and the contracts stay leaves.
package weft_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/weftcloud/weft"

// pkg is one package of the module as its files say.
type pkg struct {
	doc       bool     // some file has a package comment
	imports   []string // of its non-test files
	onlyTests bool
}

// packages parses every package of the module (package clauses, comments
// and imports only), keyed by import path.
func packages(t *testing.T) map[string]*pkg {
	t.Helper()
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		test := strings.HasSuffix(p, "_test.go")
		if test && strings.HasSuffix(f.Name.Name, "_test") {
			return nil // an external test package
		}
		ip := path.Join(module, filepath.ToSlash(filepath.Dir(p)))
		k := pkgs[ip]
		if k == nil {
			k = &pkg{onlyTests: true}
			pkgs[ip] = k
		}
		want := "Package " + f.Name.Name + " "
		if f.Name.Name == "main" {
			want = "Command " + filepath.Base(filepath.Dir(p)) + " "
		}
		k.doc = k.doc || f.Doc != nil && strings.HasPrefix(f.Doc.Text(), want)
		if test {
			return nil
		}
		k.onlyTests = false
		for _, imp := range f.Imports {
			s, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(k.imports, s) {
				k.imports = append(k.imports, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 20 {
		t.Fatalf("found %d packages: the walk is broken", len(pkgs))
	}
	return pkgs
}

// TestPackagesHaveDocs: every package has a comment that starts
// "Package NAME" ("Command NAME" for a program), the first thing a reader
// of go doc sees.
func TestPackagesHaveDocs(t *testing.T) {
	for ip, p := range packages(t) {
		if !p.doc && ip != module { // the module root holds only this test
			t.Errorf("%s has no package comment (// Package NAME ..., or // Command NAME ... for a program)", ip)
		}
	}
}

// TestImportRules: the import rules of docs/architecture.md.
func TestImportRules(t *testing.T) {
	pkgs := packages(t)
	// deps is every package of the module ip imports, directly or not.
	deps := func(ip string) []string {
		var out []string
		var visit func(string)
		visit = func(ip string) {
			for _, imp := range pkgs[ip].imports {
				if strings.HasPrefix(imp, module+"/") && !slices.Contains(out, imp) {
					out = append(out, imp)
					visit(imp)
				}
			}
		}
		visit(ip)
		return out
	}
	// The contracts import nothing from the module: everything else
	// depends on them, not they on it.
	for _, leaf := range []string{"api", "internal/driver", "internal/fabric/placement"} {
		if got := deps(module + "/" + leaf); len(got) > 0 {
			t.Errorf("%s imports %v from the module; it is a contract and imports none of it", leaf, got)
		}
	}
	// Placement is pure: candidates in, a decision out; no I/O, no clock.
	impure := []string{"os", "os/exec", "io", "io/fs", "net", "net/http", "time", "syscall", "log", "log/slog", "math/rand", "math/rand/v2", "crypto/rand"}
	for _, imp := range pkgs[module+"/internal/fabric/placement"].imports {
		if slices.Contains(impure, imp) {
			t.Errorf("internal/fabric/placement imports %s; placement does no I/O and reads no clock", imp)
		}
	}
	// The storage service runs alone (weft storage): it never imports
	// the fabric or the parts that run it.
	for ip := range pkgs {
		if !strings.HasPrefix(ip, module+"/internal/storage") {
			continue
		}
		for _, dep := range deps(ip) {
			for _, fabric := range []string{"internal/fabric", "internal/controlapi", "internal/agent", "internal/daemon", "internal/cluster"} {
				if dep == module+"/"+fabric || strings.HasPrefix(dep, module+"/"+fabric+"/") {
					t.Errorf("%s imports %s: storage never imports the fabric", strings.TrimPrefix(ip, module+"/"), strings.TrimPrefix(dep, module+"/"))
				}
			}
		}
	}
}
