package pkgarchive

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

// TestUnpackLinkChain is the package attack of the issue: links that each
// look inside the package, chained so that tgt/FILE would be written three
// folders above it. Check (the controller at upload) and Unpack (the node)
// refuse it naming the entry, and nothing appears outside.
func TestUnpackLinkChain(t *testing.T) {
	pkg := untartest.Gzip(untartest.Tar(untartest.LinkChain(untartest.HostName)...))
	const want = "a/a/a/d/up: unsafe entry: its path goes through the link a"
	if err := Check(bytes.NewReader(pkg), 1<<20); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), want) {
		t.Errorf("Check = %v, want %q", err, want)
	}
	sb := untartest.NewSandbox(t)
	if _, err := Unpack(bytes.NewReader(pkg), sb.Root, 1<<20, nil); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), want) {
		t.Errorf("Unpack = %v, want %q", err, want)
	}
	sb.Check(t)
}

// TestLinksAreResolvedThroughOtherLinks: whether a link stays inside
// depends on the links it goes through, not on its text alone.
func TestLinksAreResolvedThroughOtherLinks(t *testing.T) {
	cases := []struct {
		name    string
		entries []untartest.Entry
		bad     string // the entry named, "" when the package is fine
	}{
		{"up through a link to the root", []untartest.Entry{
			{Name: "a", Type: tar.TypeSymlink, Link: "."},
			{Name: "d/", Type: tar.TypeDir},
			{Name: "d/up", Type: tar.TypeSymlink, Link: "../a/.."},
		}, "d/up: unsafe entry: its link to ../a/.. leads outside"},
		{"a link to a link out", []untartest.Entry{
			{Name: "deep/er/", Type: tar.TypeDir},
			{Name: "deep/er/out", Type: tar.TypeSymlink, Link: "../../.."},
			{Name: "x", Type: tar.TypeSymlink, Link: "deep/er/out"},
		}, "leads outside"},
		{"a loop", []untartest.Entry{
			{Name: "loop", Type: tar.TypeSymlink, Link: "loop"},
		}, "loop: unsafe entry: its link to loop goes through more than 40 links"},
		{"links that stay inside", []untartest.Entry{
			{Name: "bin/", Type: tar.TypeDir},
			{Name: "bin/server", Body: "x"},
			{Name: "lib", Type: tar.TypeSymlink, Link: "bin"},
			{Name: "run", Type: tar.TypeSymlink, Link: "lib/../bin/./server"},
			{Name: "self", Type: tar.TypeSymlink, Link: "."},
			{Name: "bin/up", Type: tar.TypeSymlink, Link: "../self/bin"},
			{Name: "later", Type: tar.TypeSymlink, Link: "not/yet/there"},
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pkg := untartest.Gzip(untartest.Tar(tc.entries...))
			err := Check(bytes.NewReader(pkg), 1<<20)
			if tc.bad == "" && err != nil || tc.bad != "" && (!errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.bad)) {
				t.Errorf("Check = %v, want %q", err, tc.bad)
			}
			sb := untartest.NewSandbox(t)
			_, uerr := Unpack(bytes.NewReader(pkg), sb.Root, 1<<20, nil)
			if (err == nil) != (uerr == nil) {
				t.Errorf("Unpack = %v, Check = %v: they should agree", uerr, err)
			}
			sb.Check(t)
		})
	}
}

// TestPackRefusesWhatANodeWould: Pack tells at once, before an upload.
func TestPackRefusesWhatANodeWould(t *testing.T) {
	src := t.TempDir()
	os.Symlink(".", filepath.Join(src, "a"))
	os.Mkdir(filepath.Join(src, "d"), 0o755)
	os.Symlink("../a/..", filepath.Join(src, "d", "up"))
	if err := Pack(src, &bytes.Buffer{}); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "d/up") {
		t.Errorf("Pack = %v, want d/up refused", err)
	}
}

// TestUnpackRefusesABomb: a small gzip of zeros that unpacks past the
// node's budget is refused with the limit named, and what it wrote is
// charged until given back.
func TestUnpackRefusesABomb(t *testing.T) {
	pkg := untartest.Gzip(untartest.Tar(untartest.Entry{Name: "zeros", Size: 8 << 20}))
	if len(pkg) > 64<<10 {
		t.Fatalf("the bomb is %d bytes gzip'd", len(pkg))
	}
	if err := Check(bytes.NewReader(pkg), 2<<20); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "2Mi, the limit for one archive") {
		t.Errorf("Check = %v, want the limit named", err)
	}
	budget := untar.NewBudget(4 << 20)
	budget.Hold(1 << 20) // another instance's
	n, err := Unpack(bytes.NewReader(pkg), t.TempDir(), 0, budget)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit of 4Mi") {
		t.Errorf("Unpack = %v, want the node's limit named", err)
	}
	if got := budget.Used(); got != 1<<20+n {
		t.Errorf("budget holds %d, want %d", got, 1<<20+n)
	}
}
