package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// DatabaseNames are the storage service's databases: each keeps
// DIR/NAME/NAME.db and its log.
var DatabaseNames = []string{"blob", "queue", "table"}

// maxBatch bounds a request's body: batches are about batchBytes, and a
// frame of a database is at most a few MiB.
const maxBatch = 256 << 20

// Receiver is a replica's side: it applies the primary's ops to the
// storage directory, which no storage service has open meanwhile.
type Receiver struct {
	dir    string
	client *http.Client
	accept func(Source) error
	log    *slog.Logger

	mu     sync.Mutex
	dbs    map[string]*boltlog.DB
	closed bool
	// stale are the data files this replica had at the last reset that no
	// copy named since: prune removes them.
	stale  map[string]bool
	copied CopyStats
}

// ReceiverConfig configures OpenReceiver.
type ReceiverConfig struct {
	Dir    string       // the storage directory
	Client *http.Client // to the primary's API, to copy files
	// Accept refuses a request from a primary that is not the current
	// one as this server knows the replicated state.
	Accept func(Source) error
	Logger *slog.Logger
}

// OpenReceiver opens the storage directory's databases to apply ops to.
func OpenReceiver(cfg ReceiverConfig) (*Receiver, error) {
	r := &Receiver{dir: cfg.Dir, client: cfg.Client, accept: cfg.Accept, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Receiver) open() error {
	r.dbs = map[string]*boltlog.DB{}
	for _, name := range DatabaseNames {
		db, err := boltlog.Open(filepath.Join(r.dir, name), name, boltlog.Options{Logger: r.log})
		if err != nil {
			r.closeDBs()
			return fmt.Errorf("replica: %w", err)
		}
		r.dbs[name] = db
	}
	return nil
}

func (r *Receiver) closeDBs() error {
	var errs []error
	for _, db := range r.dbs {
		errs = append(errs, db.Close())
	}
	r.dbs = nil
	return errors.Join(errs...)
}

// Close closes the databases; requests after it are refused.
func (r *Receiver) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.closeDBs()
}

// ServeHTTP takes POST .../ops (a batch to apply), POST .../reset (empty
// the storage but for the data files, before a copy) and POST .../prune
// (remove the data files the copy did not name; it answers CopyStats).
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	route := strings.TrimPrefix(req.URL.Path, routePrefix)
	if req.Method != http.MethodPost || (route != "ops" && route != "reset" && route != "prune") {
		http.Error(w, "replica: no such route", http.StatusNotFound)
		return
	}
	src, err := sourceOf(req.Header)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := r.accept(src); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBatch))
	if err != nil {
		http.Error(w, "replica: reading the batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	ops, err := decodeOps(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		http.Error(w, "replica: this server's storage is not a replica now", http.StatusConflict)
		return
	}
	switch route {
	case "reset":
		err = r.reset()
	case "prune":
		err = r.prune()
	default:
		err = r.apply(req.Context(), src, ops)
	}
	if err != nil {
		r.log.Warn("replica: applying the primary's changes failed", "primary", src.Name, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if route == "prune" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.copied)
	}
}

// reset empties the storage directory for a copy from the primary, but
// for the data files: copies bring them level block by block.
func (r *Receiver) reset() error {
	if err := r.closeDBs(); err != nil {
		return err
	}
	if err := emptyExcept(r.dir, strings.Split(dataDir, "/")); err != nil {
		return fmt.Errorf("replica: emptying storage: %w", err)
	}
	r.stale = map[string]bool{}
	r.copied = CopyStats{}
	err := dataFiles(r.dir, func(path string) error {
		r.stale[path] = true
		return nil
	})
	if err != nil {
		return err
	}
	return r.open()
}

// prune removes the data files the copy since the reset did not name: the
// primary has them no longer.
func (r *Receiver) prune() error {
	dirs := map[string]bool{}
	for path := range r.stale {
		abs := filepath.Join(r.dir, filepath.FromSlash(path))
		if err := os.Remove(abs); err != nil && !os.IsNotExist(err) {
			return err
		}
		dirs[filepath.Dir(abs)] = true
	}
	for dir := range dirs {
		if err := atomicfile.SyncDir(dir); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if len(r.stale) > 0 {
		r.log.Info("replica: removed the data files the primary no longer has", "files", len(r.stale))
	}
	clear(r.stale)
	return nil
}

// emptyExcept removes everything in dir but the path keep (its elements,
// at least one).
func emptyExcept(dir string, keep []string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if e.Name() == keep[0] && e.IsDir() {
			if len(keep) > 1 {
				if err := emptyExcept(path, keep[1:]); err != nil {
					return err
				}
			}
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	return nil
}

// dataDir holds the blob service's data files, the only files replicas
// are sent besides the databases' frames.
const dataDir = "blob/data"

// dataFiles calls fn with the path of each data file under dir, relative
// to dir and slash-separated as ops name them.
func dataFiles(dir string, fn func(path string) error) error {
	return filepath.WalkDir(filepath.Join(dir, filepath.FromSlash(dataDir)), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile, or no blob service yet
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel))
	})
}

// apply applies a batch in order. File data is durable before any frame
// after it is logged, so that a crash never leaves metadata referring to
// bytes this replica lost.
func (r *Receiver) apply(ctx context.Context, src Source, ops []Op) error {
	w := &fileWriter{dir: r.dir, open: map[string]*os.File{}, dirs: map[string]bool{}}
	defer w.closeAll()
	for _, o := range ops {
		if o.kind != opFrame {
			if !validPath(o.path) {
				return fmt.Errorf("replica: bad path %q", o.path)
			}
			delete(r.stale, o.path)
		}
		var err error
		switch o.kind {
		case opFrame:
			db := r.dbs[o.db]
			if db == nil {
				return fmt.Errorf("replica: no database %q", o.db)
			}
			if err = w.sync(); err == nil {
				err = db.Apply(o.data)
			}
		case opWrite:
			var f *os.File
			if f, err = w.file(o.path); err == nil {
				_, err = f.WriteAt(o.data, o.off)
			}
		case opPunch:
			var f *os.File
			if f, err = w.file(o.path); err == nil {
				err = zero(f, o.off, o.n)
			}
		case opTruncate:
			var f *os.File
			if f, err = w.file(o.path); err == nil {
				err = f.Truncate(o.n)
			}
		case opCopy:
			w.forget(o.path)
			err = r.copyFile(ctx, src, o.path, o.n, w)
		case opRemove:
			w.forget(o.path)
			if err = os.Remove(w.abs(o.path)); os.IsNotExist(err) {
				err = nil
			}
			w.dirs[filepath.Dir(w.abs(o.path))] = true
		}
		if err != nil {
			return fmt.Errorf("replica: %s: %w", o.path, err)
		}
	}
	return w.sync()
}

// validPath admits blob data files only: a primary can name nothing else.
func validPath(p string) bool {
	return filepath.IsLocal(p) && strings.HasPrefix(p, dataDir+"/") && !strings.Contains(p, "\\")
}

// fileWriter keeps the files a batch writes open until they are synced.
type fileWriter struct {
	dir  string
	open map[string]*os.File
	dirs map[string]bool // directories whose entries changed
}

func (w *fileWriter) abs(path string) string { return filepath.Join(w.dir, filepath.FromSlash(path)) }

func (w *fileWriter) file(path string) (*os.File, error) {
	if f := w.open[path]; f != nil {
		return f, nil
	}
	abs := w.abs(path)
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); os.IsNotExist(err) {
		w.dirs[filepath.Dir(abs)] = true
	}
	f, err := os.OpenFile(abs, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	w.open[path] = f
	return f, nil
}

// forget syncs and closes path if open, before it is replaced or removed.
func (w *fileWriter) forget(path string) {
	if f := w.open[path]; f != nil {
		_ = unix.Fdatasync(int(f.Fd()))
		f.Close()
		delete(w.open, path)
	}
}

// sync makes what the batch wrote so far durable.
func (w *fileWriter) sync() error {
	var errs []error
	for path, f := range w.open {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		f.Close()
	}
	clear(w.open)
	for dir := range w.dirs {
		if err := atomicfile.SyncDir(dir); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	clear(w.dirs)
	return errors.Join(errs...)
}

func (w *fileWriter) closeAll() {
	for _, f := range w.open {
		f.Close()
	}
}

// zero zeroes a range, freeing its blocks where the file system can.
func zero(f *os.File, off, n int64) error {
	if unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n) == nil {
		return nil
	}
	zeros := make([]byte, min(n, 1<<20))
	for done := int64(0); done < n; {
		m := min(int64(len(zeros)), n-done)
		if _, err := f.WriteAt(zeros[:m], off+done); err != nil {
			return err
		}
		done += m
	}
	return nil
}

// Copied says what the copies since the last reset brought.
func (r *Receiver) Copied() CopyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.copied
}
