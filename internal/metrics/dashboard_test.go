package metrics

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardNamesExist: every metric the Grafana dashboard in docs/
// queries is defined by a part of Weft (a name in a Go string literal), so
// a renamed metric cannot leave a panel empty.
func TestDashboardNamesExist(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "grafana", "weft-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct{ Panels []json.RawMessage }
	if err := json.Unmarshal(raw, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("the dashboard is not a Grafana dashboard: %v", err)
	}
	var defined strings.Builder
	err = filepath.WalkDir(filepath.Join("..", ".."), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		defined.Write(src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	suffix := regexp.MustCompile(`_(bucket|sum|count)$`)
	seen := map[string]bool{}
	for _, name := range regexp.MustCompile(`weft_[a-z_]+`).FindAllString(string(raw), -1) {
		base := suffix.ReplaceAllString(name, "")
		if seen[base] {
			continue
		}
		seen[base] = true
		if !strings.Contains(defined.String(), `"`+base+`"`) {
			t.Errorf("the dashboard queries %s, which no Go file defines", name)
		}
	}
	if len(seen) < 20 {
		t.Errorf("the dashboard queries %d metrics; want the figures of every part", len(seen))
	}
}
