package untar_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/internal/untar"
	"github.com/weftcloud/weft/internal/untar/untartest"
)

func TestExtractRefusesPathsThroughLinks(t *testing.T) {
	cases := map[string][]untartest.Entry{
		"a file":           {{Name: "etc", Type: tar.TypeSymlink, Link: "../../host"}, {Name: "etc/file", Body: "owned"}},
		"a folder":         {{Name: "etc", Type: tar.TypeSymlink, Link: "."}, {Name: "etc/d/", Type: tar.TypeDir}},
		"a hard link":      {{Name: "etc", Type: tar.TypeSymlink, Link: "../../host"}, {Name: "x", Type: tar.TypeLink, Link: "etc/file"}},
		"a link in a link": {{Name: "etc", Type: tar.TypeSymlink, Link: "/"}, {Name: "etc/l", Type: tar.TypeSymlink, Link: "x"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			sb := untartest.NewSandbox(t)
			_, err := untar.Extract(bytes.NewReader(untartest.Tar(entries...)), sb.Root, untar.Options{})
			if !errors.Is(err, untar.ErrUnsafe) || !strings.Contains(err.Error(), "through a symbolic link") {
				t.Errorf("Extract = %v, want ErrUnsafe", err)
			}
			sb.Check(t)
		})
	}
}

// TestExtractCountsAsUsageMeasures: what Extract charges is what Usage
// finds on disk afterwards, so a restarted node counts the same.
func TestExtractCountsAsUsageMeasures(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	budget := untar.NewBudget(0)
	n, err := untar.Extract(bytes.NewReader(untartest.Tar(
		untartest.Entry{Name: "a/b/c", Body: "hello"},
		untartest.Entry{Name: "a/", Type: tar.TypeDir, Mode: 0o755},
		untartest.Entry{Name: "a/b/", Type: tar.TypeDir, Mode: 0o755},
		untartest.Entry{Name: "l", Type: tar.TypeSymlink, Link: "a/b/c"},
		untartest.Entry{Name: "dev", Type: tar.TypeFifo},
	)), dir, untar.Options{Budget: budget, Entry: func(h *tar.Header) error {
		if h.Typeflag == tar.TypeFifo {
			return untar.ErrSkip
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(4*untar.EntryCost + 5); n != want || budget.Used() != want {
		t.Errorf("charged %d (budget %d), want %d", n, budget.Used(), want)
	}
	if got, err := untar.Usage(dir); err != nil || got != n {
		t.Errorf("Usage = %d, %v; want %d", got, err, n)
	}
	budget.Release(n)
	if budget.Used() != 0 {
		t.Errorf("budget holds %d after Release", budget.Used())
	}
	if _, err := os.Stat(filepath.Join(dir, "dev")); err == nil {
		t.Error("a skipped entry was written")
	}
}
