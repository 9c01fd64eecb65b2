package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

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

// ServeHTTP takes POST .../ops (a batch to apply) and POST .../reset
// (empty the storage, before a copy).
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	route := strings.TrimPrefix(req.URL.Path, routePrefix)
	if req.Method != http.MethodPost || (route != "ops" && route != "reset") {
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
	if route == "reset" {
		err = r.reset()
	} else {
		err = r.apply(req.Context(), src, ops)
	}
	if err != nil {
		r.log.Warn("replica: applying the primary's changes failed", "primary", src.Name, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// reset empties the storage directory for a copy from the primary.
func (r *Receiver) reset() error {
	if err := r.closeDBs(); err != nil {
		return err
	}
	ents, err := os.ReadDir(r.dir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
			return fmt.Errorf("replica: emptying storage: %w", err)
		}
	}
	return r.open()
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
			err = r.copyFile(ctx, src, o.path, w)
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
	return filepath.IsLocal(p) && strings.HasPrefix(p, "blob/data/") && !strings.Contains(p, "\\")
}

// copyFile fetches a whole file from the primary into place. A file the
// primary no longer has was removed; the op that says so follows.
func (r *Receiver) copyFile(ctx context.Context, src Source, path string, w *fileWriter) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.API+routePrefix+"file?path="+url.QueryEscape(path), nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("copy from %s: %s", src.Name, resp.Status)
	}
	size, err := strconv.ParseInt(resp.Header.Get(headerSize), 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("copy from %s: no size", src.Name)
	}
	final := w.abs(path)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	tmp := final + ".copy"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = receiveExtents(f, resp.Body, size)
	}
	if err == nil {
		err = unix.Fdatasync(int(f.Fd()))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	w.dirs[filepath.Dir(final)] = true
	return nil
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
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); os.IsNotExist(err) {
		w.dirs[filepath.Dir(abs)] = true
	}
	f, err := os.OpenFile(abs, os.O_CREATE|os.O_WRONLY, 0o644)
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

// headerSize carries a copied file's size; its body is its data extents
// (holes left out), each as offset and length (8 bytes each, big-endian)
// and the bytes.
const headerSize = "X-Weft-Size"

// FileHandler serves GET .../file?path=P, a data file of the storage
// directory dir, to a replica copying it; ok refuses callers when this
// server is not the primary.
func FileHandler(dir string, ok func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := req.URL.Query().Get("path")
		if !validPath(path) {
			http.Error(w, "replica: bad path", http.StatusBadRequest)
			return
		}
		if err := ok(); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(path)))
		if os.IsNotExist(err) {
			http.Error(w, "replica: no such file", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set(headerSize, strconv.FormatInt(st.Size(), 10))
		// An error past this point cuts the body short, which the replica
		// sees as a failed copy.
		_ = sendExtents(w, f, st.Size())
	})
}

// sendExtents writes f's data extents up to size.
func sendExtents(w io.Writer, f *os.File, size int64) error {
	var head [16]byte
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		hole = min(hole, size)
		if data >= hole {
			return nil
		}
		binary.BigEndian.PutUint64(head[:8], uint64(data))
		binary.BigEndian.PutUint64(head[8:], uint64(hole-data))
		if _, err := w.Write(head[:]); err != nil {
			return err
		}
		if n, err := io.Copy(w, io.NewSectionReader(f, data, hole-data)); err != nil {
			return err
		} else if n != hole-data {
			return io.ErrUnexpectedEOF
		}
		off = hole
	}
	return nil
}

// receiveExtents writes what sendExtents sent into f, of size bytes.
func receiveExtents(f *os.File, r io.Reader, size int64) error {
	var head [16]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		off, n := int64(binary.BigEndian.Uint64(head[:8])), int64(binary.BigEndian.Uint64(head[8:]))
		if off < 0 || n < 0 || off+n > size {
			return errors.New("bad extent")
		}
		if m, err := io.Copy(io.NewOffsetWriter(f, off), io.LimitReader(r, n)); err != nil {
			return err
		} else if m != n {
			return io.ErrUnexpectedEOF
		}
	}
}
