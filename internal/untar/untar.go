// Package untar extracts tar archives from untrusted sources into a folder
// they cannot get out of. Images and packages both unpack through it.
//
// Every path is resolved from a descriptor of the folder with openat2 and
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so neither "..", an absolute name,
// nor a symbolic link the archive made earlier leads outside; an entry whose
// path goes through a link is refused. Modes, owners and times are set on
// the entry itself (through its own descriptor, or with AT_SYMLINK_NOFOLLOW),
// never on what a link points to, and owners before modes so that chown does
// not clear setuid and setgid bits. Hard links must name an entry inside the
// folder. What an archive may write is bounded per archive and per node
// (Budget).
package untar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/api"
)

// ErrSkip, returned by Options.Entry, leaves an entry out.
var ErrSkip = errors.New("untar: skip this entry")

// ErrUnsafe is returned for an entry that would write outside the folder,
// through a symbolic link, or of a type Extract does not write.
var ErrUnsafe = errors.New("unsafe entry")

// ErrTooLarge is returned when an archive exceeds Options.MaxBytes or the
// node's Budget. The message names the limit.
var ErrTooLarge = errors.New("archive too large")

// DefaultMaxBytes is the default limit for one archive (Options.MaxBytes):
// what a node unpacks one image or package to unless configured otherwise,
// and what the controller accepts at upload.
const DefaultMaxBytes = 4 << 30

// DefaultBudget is the default limit of a node's Budget: all the images and
// packages unpacked on it at once.
const DefaultBudget = 16 << 30

// EntryCost is what each entry counts against the limits besides its
// content (the size of a tar header), so that an archive of millions of
// empty files is bounded too.
const EntryCost = 512

// Options says how Extract writes.
type Options struct {
	// Entry, when set, sees each header as the archive has it before it is
	// written: it may change it, return ErrSkip to leave the entry out, or
	// return another error to stop.
	Entry func(h *tar.Header) error
	// Owners sets each entry's owner from the archive (needs root).
	Owners bool
	// Times sets each entry's modification time from the archive.
	Times bool
	// MaxBytes bounds what this archive may write (content plus EntryCost
	// per entry); 0 means no bound of its own.
	MaxBytes int64
	// Budget, when set, is charged with what is written.
	Budget *Budget
}

// Extract writes the tar read from r into dir, creating dir if needed.
// Names are taken as paths inside dir ("../x" and "/x" are dir/x). Regular
// files, folders, symbolic links and hard links are written; Entry decides
// about the others (without it they are ErrUnsafe).
//
// It returns the bytes charged (content plus EntryCost per entry), also on
// error: the caller owns that much of opt.Budget until it removes dir and
// calls Budget.Release. On error dir holds what was written so far.
func Extract(r io.Reader, dir string, opt Options) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("untar: %w", err)
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("untar: open %s: %w", dir, err)
	}
	defer unix.Close(root)
	x := &extractor{root: root, opt: opt}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.n, fmt.Errorf("untar: read: %w", err)
		}
		if opt.Entry != nil {
			if err := opt.Entry(h); errors.Is(err, ErrSkip) {
				continue
			} else if err != nil {
				return x.n, err
			}
		}
		rel := path.Clean("/" + h.Name)[1:]
		if rel == "" {
			continue // the folder itself
		}
		if err := x.charge(h); err != nil {
			return x.n, fmt.Errorf("untar: %s: %w", h.Name, err)
		}
		if err := x.write(h, rel, tr); err != nil {
			return x.n, fmt.Errorf("untar: %s: %w", h.Name, err)
		}
	}
	// Folder times last, after every write: writing into a folder changes its time.
	for i := len(x.dirTimes) - 1; i >= 0; i-- {
		d := x.dirTimes[i]
		x.setTime(d.rel, d.t)
	}
	return x.n, nil
}

type extractor struct {
	root     int
	opt      Options
	n        int64
	dirTimes []dirTime
}

type dirTime struct {
	rel string
	t   time.Time
}

// Cost is what an entry counts against the limits: its content, if a
// regular file, plus EntryCost.
func Cost(h *tar.Header) int64 {
	if h.Typeflag == tar.TypeReg {
		return EntryCost + h.Size
	}
	return EntryCost
}

func (x *extractor) charge(h *tar.Header) error {
	cost := Cost(h)
	if x.opt.MaxBytes > 0 && x.n+cost > x.opt.MaxBytes {
		return TooLarge(x.opt.MaxBytes)
	}
	if x.opt.Budget != nil {
		if err := x.opt.Budget.take(cost); err != nil {
			return fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
	}
	x.n += cost
	return nil
}

// TooLarge is the error for an archive over maxBytes, the limit for one.
func TooLarge(maxBytes int64) error {
	return fmt.Errorf("%w: it unpacks to more than %s, the limit for one archive", ErrTooLarge, api.Bytes(maxBytes))
}

var errThroughSymlink = errors.New("the path goes through a symbolic link")

// resolve is RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: the path stays under the
// descriptor and follows no link, the last component included.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openDir opens the folder rel ("" is the root) as an O_PATH descriptor,
// creating missing folders (mode 0755) when create is set.
func (x *extractor) openDir(rel string, create bool) (int, error) {
	fd, err := openat2(x.root, ".", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return -1, err
	}
	if rel == "" {
		return fd, nil
	}
	for _, name := range strings.Split(rel, "/") {
		if create {
			if err := unix.Mkdirat(fd, name, 0o755); err != nil && err != unix.EEXIST {
				unix.Close(fd)
				return -1, fmt.Errorf("create folder %s: %w", name, err)
			}
		}
		next, err := openat2(fd, name, unix.O_PATH|unix.O_DIRECTORY)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

func openat2(dirfd int, name string, flags uint64) (int, error) {
	fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve})
	if err == unix.ELOOP {
		return -1, fmt.Errorf("%w: %s", ErrUnsafe, errThroughSymlink)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", name, err)
	}
	return fd, nil
}

// split parts rel into its folder ("" for the root) and last name.
func split(rel string) (string, string) {
	dir, base := path.Split(rel)
	return strings.TrimSuffix(dir, "/"), base
}

func (x *extractor) write(h *tar.Header, rel string, r io.Reader) error {
	parentRel, base := split(rel)
	parent, err := x.openDir(parentRel, true)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	switch h.Typeflag {
	case tar.TypeDir:
		if err := x.mkdir(parent, base); err != nil {
			return err
		}
		fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open folder: %w", err)
		}
		err = x.setOwnerMode(fd, h)
		unix.Close(fd)
		if err != nil {
			return err
		}
		if x.opt.Times {
			x.dirTimes = append(x.dirTimes, dirTime{rel, h.ModTime})
		}
		return nil
	case tar.TypeReg:
		if err := x.replace(parent, base); err != nil {
			return err
		}
		fd, err := unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		f := os.NewFile(uintptr(fd), rel)
		_, err = io.Copy(f, r)
		if err == nil {
			err = x.setOwnerMode(fd, h)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := x.replace(parent, base); err != nil {
			return err
		}
		if err := unix.Symlinkat(h.Linkname, parent, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		if x.opt.Owners {
			if err := unix.Fchownat(parent, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("chown: %w", err)
			}
		}
	case tar.TypeLink:
		if err := x.link(parent, base, h.Linkname); err != nil {
			return err
		}
		return nil // the target's owner, mode and time are the link's
	default:
		return fmt.Errorf("%w: type %q is not a file, folder or link", ErrUnsafe, h.Typeflag)
	}
	if x.opt.Times {
		ts := unix.NsecToTimespec(h.ModTime.UnixNano())
		if err := unix.UtimesNanoAt(parent, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set time: %w", err)
		}
	}
	return nil
}

// mkdir makes the folder base in parent, replacing a file or link of that
// name; an existing folder is kept.
func (x *extractor) mkdir(parent int, base string) error {
	err := unix.Mkdirat(parent, base, 0o700)
	if err != unix.EEXIST {
		if err != nil {
			return fmt.Errorf("create folder: %w", err)
		}
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if err := unix.Unlinkat(parent, base, 0); err != nil {
		return fmt.Errorf("replace with a folder: %w", err)
	}
	if err := unix.Mkdirat(parent, base, 0o700); err != nil {
		return fmt.Errorf("create folder: %w", err)
	}
	return nil
}

// replace removes what a later entry of the same name supersedes: a file,
// a link or an empty folder.
func (x *extractor) replace(parent int, base string) error {
	err := unix.Unlinkat(parent, base, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(parent, base, unix.AT_REMOVEDIR)
	}
	if err != nil && err != unix.ENOENT {
		return fmt.Errorf("replace: %w", err)
	}
	return nil
}

// link makes base in parent a hard link to target, a path inside the root
// reached without following links; a target that is a link is linked
// itself, not what it points to.
func (x *extractor) link(parent int, base, target string) error {
	rel := path.Clean("/" + target)[1:]
	if rel == "" {
		return fmt.Errorf("%w: hard link to the root folder", ErrUnsafe)
	}
	srcRel, srcBase := split(rel)
	src, err := x.openDir(srcRel, false)
	if err != nil {
		return fmt.Errorf("hard link target %s: %w", target, err)
	}
	defer unix.Close(src)
	if err := x.replace(parent, base); err != nil {
		return err
	}
	if err := unix.Linkat(src, srcBase, parent, base, 0); err != nil {
		return fmt.Errorf("hard link to %s: %w", target, err)
	}
	return nil
}

// setOwnerMode sets an open entry's owner, then its mode: chown clears
// setuid and setgid, so the other order would lose them.
func (x *extractor) setOwnerMode(fd int, h *tar.Header) error {
	if x.opt.Owners {
		if err := unix.Fchown(fd, h.Uid, h.Gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, uint32(h.Mode)&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// setTime sets a folder's time; a folder an entry replaced since is left be.
func (x *extractor) setTime(rel string, t time.Time) {
	parentRel, base := split(rel)
	parent, err := x.openDir(parentRel, false)
	if err != nil {
		return
	}
	defer unix.Close(parent)
	ts := unix.NsecToTimespec(t.UnixNano())
	unix.UtimesNanoAt(parent, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
