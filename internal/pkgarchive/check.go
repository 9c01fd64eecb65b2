package pkgarchive

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/weftcloud/weft/internal/untar"
)

// maxLinkWork bounds the work of resolving a package's links (bytes of
// paths looked up, over all links), so that checking an upload stays cheap
// whatever its links are.
const maxLinkWork = 64 << 20

// maxLinkHops is how many links one path may go through, as Linux allows.
const maxLinkHops = 40

// checker applies a package's rules to its entries, in archive order
// (entry), then to its links once all are known (finish). Pack, Check and
// Unpack share it.
type checker struct {
	links map[string]string // link name -> target, names cleaned
	seen  map[string]bool
}

func newChecker() *checker {
	return &checker{links: map[string]string{}, seen: map[string]bool{}}
}

func unsafe(name, why string, args ...any) error {
	return fmt.Errorf("pkgarchive: %s: %w: %s", name, ErrUnsafe, fmt.Sprintf(why, args...))
}

// entry checks one header and makes it what a package unpacks to: its name
// cleaned, permission bits only, folders writable by their owner. It
// returns untar.ErrSkip for the root folder.
func (c *checker) entry(h *tar.Header) error {
	name := path.Clean(strings.TrimSuffix(h.Name, "/"))
	if name == "." {
		return untar.ErrSkip
	}
	if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return unsafe(h.Name, "outside the package")
	}
	if c.seen[name] {
		return unsafe(h.Name, "given twice")
	}
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if _, ok := c.links[p]; ok {
			return unsafe(h.Name, "its path goes through the link %s", p)
		}
	}
	mode := int64(fs.FileMode(h.Mode).Perm())
	switch h.Typeflag {
	case tar.TypeDir:
		mode |= 0o700
	case tar.TypeReg:
	case tar.TypeSymlink:
		if path.IsAbs(h.Linkname) {
			return unsafe(h.Name, "links to an absolute path (%s)", h.Linkname)
		}
		if len(h.Linkname) >= 4096 || h.Linkname == "" {
			return unsafe(h.Name, "its link target is empty or too long")
		}
		c.links[name] = h.Linkname
	default:
		return unsafe(h.Name, "type %q is not a file, folder or symbolic link", h.Typeflag)
	}
	c.seen[name] = true
	h.Name, h.Mode = name, mode
	return nil
}

// finish checks that every link, followed through the package's other
// links as the kernel would, stays inside the package. A name the package
// does not have is taken as a folder.
func (c *checker) finish() error {
	work := 0
	for name, target := range c.links {
		if err := c.resolve(name, target, &work); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) resolve(name, target string, work *int) error {
	var at []string // the folder reached so far, as components under the root
	if d := path.Dir(name); d != "." {
		at = strings.Split(d, "/")
	}
	todo := strings.Split(target, "/")
	hops := 0
	for len(todo) > 0 {
		comp := todo[0]
		todo = todo[1:]
		switch comp {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return unsafe(name, "its link to %s leads outside the package", target)
			}
			at = at[:len(at)-1]
			continue
		}
		at = append(at, comp)
		p := strings.Join(at, "/")
		if *work += len(p); *work > maxLinkWork {
			return unsafe(name, "the package's links are too many or too deep to check")
		}
		next, ok := c.links[p]
		if !ok {
			continue
		}
		if hops++; hops > maxLinkHops {
			return unsafe(name, "its link to %s goes through more than %d links", target, maxLinkHops)
		}
		if path.IsAbs(next) {
			return unsafe(name, "its link to %s leads outside the package", target)
		}
		at = at[:len(at)-1]
		todo = append(strings.Split(next, "/"), todo...)
	}
	return nil
}
