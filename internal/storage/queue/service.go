// Package queue is Weft's Azure Queue service: queues with metadata and
// access policies, messages with visibility timeouts, pop receipts and
// time-to-live, and each account's service properties (whose CORS rules
// the front end applies), served to the official Azure SDKs through the
// storage front end. Delivery is at least once: a message not deleted before its
// visibility timeout ends is delivered again. State lives in one bbolt
// file behind a write-ahead log (boltlog): every acknowledged write is
// fsynced, sharing one fdatasync with the writes beside it, before the
// answer.
package queue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// Service is the Queue service of every account, stored under one directory.
type Service struct {
	db   *boltlog.DB
	seq  atomic.Uint64 // orders messages put in the same nanosecond
	log  *slog.Logger
	now  func() time.Time
	once sync.Once
}

var _ storage.Handler = (*Service)(nil)

// Open opens (creating if needed) the Queue service stored under dir.
func Open(dir string, logger *slog.Logger) (*Service, error) {
	return OpenWith(dir, storage.Options{Logger: logger})
}

// OpenWith is Open with options.
func OpenWith(dir string, opt storage.Options) (*Service, error) {
	logger := opt.Log()
	db, err := boltlog.Open(dir, "queue", opt.Database())
	if err != nil {
		return nil, fmt.Errorf("queue: opening %s: %w", dir, err)
	}
	err = db.Update(func(tx *boltlog.Tx) error {
		for _, b := range [][]byte{bktQueues, bktService} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("queue: creating buckets: %w", err)
	}
	return &Service{db: db, log: logger, now: time.Now}, nil
}

// Close finishes the writes queued and closes the store; later requests fail.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("queue: closing store: %w", cerr)
		}
	})
	return err
}

// ServeStorage routes one authenticated request to its operation.
func (s *Service) ServeStorage(w http.ResponseWriter, r *http.Request, req *storage.Request) {
	if err := s.route(w, r, req); err != nil {
		var se *storage.Error
		if !errors.As(err, &se) {
			s.log.Error("queue: request failed", "account", req.Account, "path", req.Path, "request", req.RequestID, "err", err)
		}
		storage.WriteError(w, r, storage.Queue, err)
	}
}

func (s *Service) route(w http.ResponseWriter, r *http.Request, req *storage.Request) error {
	q := r.URL.Query()
	parts := strings.Split(req.Path, "/")
	comp := q.Get("comp")
	m := r.Method
	switch {
	case req.Path == "":
		switch {
		case m == http.MethodGet && comp == "list":
			return s.listQueues(w, r, req)
		case comp == "properties" && q.Get("restype") == "service" && m == http.MethodGet:
			return storage.GetServiceProperties(w, req, propertiesStore{s.db})
		case comp == "properties" && q.Get("restype") == "service" && m == http.MethodPut:
			return storage.SetServiceProperties(w, r, req, propertiesStore{s.db})
		case comp == "stats" && q.Get("restype") == "service" && m == http.MethodGet:
			return s.getServiceStats(w, req)
		}
	case len(parts) == 1:
		if err := validName(parts[0]); err != nil {
			return err
		}
		switch {
		case m == http.MethodPut && comp == "":
			return s.createQueue(w, r, req, parts[0])
		case m == http.MethodDelete && comp == "":
			return s.deleteQueue(w, req, parts[0])
		case (m == http.MethodGet || m == http.MethodHead) && comp == "metadata":
			return s.getMetadata(w, req, parts[0])
		case m == http.MethodPut && comp == "metadata":
			return s.setMetadata(w, r, req, parts[0])
		case (m == http.MethodGet || m == http.MethodHead) && comp == "acl":
			return s.getACL(w, r, req, parts[0])
		case m == http.MethodPut && comp == "acl":
			return s.setACL(w, r, req, parts[0])
		}
	case len(parts) == 2 && parts[1] == "messages":
		if err := validName(parts[0]); err != nil {
			return err
		}
		switch m {
		case http.MethodPost:
			return s.putMessage(w, r, req, parts[0])
		case http.MethodGet:
			if strings.EqualFold(q.Get("peekonly"), "true") {
				return s.peekMessages(w, r, req, parts[0])
			}
			return s.getMessages(w, r, req, parts[0])
		case http.MethodDelete:
			return s.clearMessages(w, req, parts[0])
		}
	case len(parts) == 3 && parts[1] == "messages" && parts[2] != "":
		if err := validName(parts[0]); err != nil {
			return err
		}
		switch m {
		case http.MethodDelete:
			return s.deleteMessage(w, r, req, parts[0], parts[2])
		case http.MethodPut:
			return s.updateMessage(w, r, req, parts[0], parts[2])
		}
	default:
		return storage.Errorf(http.StatusBadRequest, "InvalidUri", "The requested URI does not represent any resource on the server.")
	}
	return storage.Errorf(http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb %s.", m)
}

// validName applies Azure's queue name rules: 3-63 characters of
// lowercase letters, digits and dashes, starting and ending with a letter
// or digit, with no two dashes in a row.
func validName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return storage.Errorf(http.StatusBadRequest, "OutOfRangeInput", "The specified resource name length is not within the permissible limits.")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(name)-1 && name[i-1] != '-'
		if !ok {
			return storage.Errorf(http.StatusBadRequest, "InvalidResourceName", "The specifed resource name contains invalid characters.")
		}
	}
	return nil
}

func errQueueNotFound() error {
	return storage.Errorf(http.StatusNotFound, "QueueNotFound", "The specified queue does not exist.")
}

func writeEmpty(w http.ResponseWriter, status int) error {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
	return nil
}

// intParam reads an optional integer query parameter within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid: %s=%s.", name, v)
	}
	if n < lo || n > hi {
		return 0, storage.Errorf(http.StatusBadRequest, "OutOfRangeQueryParameterValue", "One of the query parameters specified in the request URI is outside the permissible range: %s=%s.", name, v)
	}
	return n, nil
}

// newID returns a random UUID, the form Azure's message ids take.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Database is the service's database, for a replica's copy of it.
func (s *Service) Database() *boltlog.DB { return s.db }
