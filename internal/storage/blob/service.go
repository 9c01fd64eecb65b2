// Package blob implements the Azure Blob service of Weft's storage: containers,
// block, append and page blobs, snapshots, copies, leases and service
// properties, over the REST protocol the official Azure SDKs speak.
//
// Metadata lives in a bbolt database and bytes in files under the service
// directory. Every acknowledged write that makes or changes a blob is on
// disk: data files are renamed into place and fsynced before the metadata
// that references them commits, and metadata commits are fsynced
// (concurrent ones share a commit). Put Block is the exception: a staged
// block is acknowledged before its data is synced, and staged blocks become
// durable at Put Block List, which syncs them before it commits the blob; a
// crash in between loses the staged blocks, never a committed blob. Block blobs
// are lists of extents of immutable files, so committing blocks, taking a
// snapshot or copying a block blob never copies bytes. Page blobs, the disks
// of persistent VMs, are sparse files written in place.
package blob

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
	"github.com/weftcloud/weft/internal/vfs"
)

// Service is the Blob service over one data directory. It is safe for
// concurrent use.
type Service struct {
	dir   string
	db    *boltlog.DB
	log   *slog.Logger
	files *fileStore

	closed chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	// locks serialise in-place writers of page and append blobs against
	// operations that change what they check (leases, sequence numbers,
	// size, snapshots).
	locks [256]sync.RWMutex

	cors sync.Map // account -> []storage.CORSRule

	lastTag atomic.Int64
	// skew moves the service's clock, for tests of leases that expire.
	skew atomic.Int64
}

var _ storage.Handler = (*Service)(nil)

// blockGCAge is how long an uncommitted block lives, as in Azure.
const blockGCAge = 7 * 24 * time.Hour

// Open opens (creating if needed) the Blob service stored under dir. It
// removes data files a crash left unreferenced and starts the background
// sweep of expired uncommitted blocks; Close stops it.
func Open(dir string, logger *slog.Logger) (*Service, error) {
	return OpenWith(dir, storage.Options{Logger: logger})
}

// OpenWith is Open with options.
func OpenWith(dir string, opt storage.Options) (*Service, error) {
	logger := opt.Log()
	if err := vfs.MkdirPrivate(vfs.Or(opt.FS), dir); err != nil {
		return nil, fmt.Errorf("blob: creating %s: %w", dir, err)
	}
	files, err := newFileStore(dir, logger, opt.Replication, opt.FS)
	if err != nil {
		return nil, err
	}
	db, err := boltlog.Open(dir, "blob", opt.Database())
	if err != nil {
		return nil, fmt.Errorf("blob: opening metadata: %w", err)
	}
	err = db.Update(func(tx *boltlog.Tx) error {
		indexed := tx.Bucket(bktBlobTags) != nil
		for _, b := range [][]byte{bktContainers, bktBlobs, bktBlocks, bktPages, bktRefs, bktInline, bktService, bktTagIndex, bktBlobTags, bktDeleted, bktExpiry, bktDelContainers, bktTrash} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if !indexed {
			return buildTagIndex(tx)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("blob: creating buckets: %w", err)
	}
	s := &Service{
		dir:    dir,
		db:     db,
		log:    logger,
		files:  files,
		closed: make(chan struct{}),
	}
	s.lastTag.Store(time.Now().UnixNano())
	if n, err := dropVolatileBlocks(db); err != nil {
		_ = db.Close()
		return nil, err
	} else if n > 0 {
		logger.Info("blob: dropped uncommitted blocks staged before a crash", "count", n)
	}
	err = db.View(func(tx *boltlog.Tx) error {
		refs := tx.Bucket(bktRefs)
		n, err := files.sweep(func(id string) bool { return refs.Get([]byte(id)) != nil })
		if n > 0 {
			logger.Info("blob: removed unreferenced data files", "count", n)
		}
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.gcLoop()
	return s, nil
}

// Close stops background work and closes the metadata store. Requests still
// in flight fail.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		s.wg.Wait()
		err = s.settleBlocks()
		if cerr := s.db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("blob: closing metadata: %w", cerr)
		}
	})
	return err
}

// dropVolatileBlocks removes, at Open, the staged blocks whose files were
// never fsynced: after a crash they may be torn or empty. Their files are
// then unreferenced and the sweep removes them. A clean Close leaves none
// (settleBlocks).
func dropVolatileBlocks(db *boltlog.DB) (int, error) {
	n := 0
	err := db.Update(func(tx *boltlog.Tx) error {
		t := &txn{tx: tx}
		blocks := tx.Bucket(bktBlocks)
		var stale [][]byte
		var files []blockRec
		err := blocks.ForEach(func(k, v []byte) error {
			var b blockRec
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("blob: decoding %q: %w", k, err)
			}
			if b.Volatile {
				stale = append(stale, append([]byte(nil), k...))
				files = append(files, b)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i, k := range stale {
			if err := t.unref(files[i].File, files[i].Inline); err != nil {
				return err
			}
			if err := blocks.Delete(k); err != nil {
				return err
			}
		}
		n = len(stale)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("blob: dropping unsynced blocks: %w", err)
	}
	return n, nil
}

// settleBlocks, at Close, fsyncs the files of the volatile staged blocks
// and clears their flag, so a clean restart keeps them.
func (s *Service) settleBlocks() error {
	return s.db.Update(func(tx *boltlog.Tx) error {
		blocks := tx.Bucket(bktBlocks)
		var keys [][]byte
		var recs []blockRec
		err := blocks.ForEach(func(k, v []byte) error {
			var b blockRec
			if err := json.Unmarshal(v, &b); err == nil && b.Volatile {
				keys = append(keys, append([]byte(nil), k...))
				recs = append(recs, b)
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		files := make([]string, len(recs))
		for i, b := range recs {
			files[i] = b.File
		}
		if err := s.files.syncFiles(files); err != nil {
			// Left volatile, the next Open drops them.
			return err
		}
		for i, k := range keys {
			recs[i].Volatile = false
			if err := putJSON(blocks, k, recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Service) now() time.Time {
	return time.Now().Add(time.Duration(s.skew.Load()))
}

// etag returns a new entity tag, strictly increasing across the service.
func (s *Service) etag(now time.Time) string {
	for {
		last := s.lastTag.Load()
		next := max(now.UnixNano(), last+1)
		if s.lastTag.CompareAndSwap(last, next) {
			return fmt.Sprintf("\"0x%X\"", next)
		}
	}
}

func (s *Service) lock(key []byte) *sync.RWMutex {
	var h uint32 = 2166136261
	for _, c := range key {
		h = (h ^ uint32(c)) * 16777619
	}
	return &s.locks[h%uint32(len(s.locks))]
}

// call is one parsed request.
type call struct {
	w         http.ResponseWriter
	r         *http.Request
	req       *storage.Request
	q         url.Values
	container string
	blob      string
	// ifTags is the request's x-ms-if-tags condition, nil when none.
	ifTags *tagExpr
}

func (c *call) query(k string) string {
	if v := c.q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c *call) has(k string) bool { _, ok := c.q[k]; return ok }

func (c *call) header(k string) string { return c.r.Header.Get(k) }

// ServeStorage answers one Blob service request; the front end has already
// authenticated it.
func (s *Service) ServeStorage(w http.ResponseWriter, r *http.Request, req *storage.Request) {
	c := &call{w: w, r: r, req: req, q: r.URL.Query()}
	c.container, c.blob, _ = strings.Cut(req.Path, "/")
	var err error
	switch {
	case c.container == "":
		err = s.serveService(c)
	case c.blob == "":
		err = s.serveContainer(c)
	default:
		err = s.serveBlob(c)
	}
	if err != nil {
		if errors.Is(err, errTooLarge) {
			err = storage.Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The request body is too large.")
		}
		var se *storage.Error
		if !errors.As(err, &se) {
			s.log.Error("blob: request failed", "method", r.Method, "path", req.Path, "err", err)
		}
		storage.WriteError(w, r, storage.Blob, err)
	}
}

func (s *Service) serveService(c *call) error {
	restype, comp := c.query("restype"), c.query("comp")
	switch {
	case c.r.Method == http.MethodGet && comp == "list":
		return s.listContainers(c)
	case c.r.Method == http.MethodGet && comp == "blobs":
		return s.findBlobs(c)
	case restype == "service" && comp == "properties" && c.r.Method == http.MethodGet:
		return s.getServiceProps(c)
	case restype == "service" && comp == "properties" && c.r.Method == http.MethodPut:
		return s.setServiceProps(c)
	case restype == "account" && comp == "properties":
		return s.accountInfo(c)
	case restype == "service" && comp == "stats":
		return s.serviceStats(c)
	}
	return unsupported(c)
}

func (s *Service) serveContainer(c *call) error {
	if err := validContainerName(c.container); err != nil {
		return err
	}
	restype, comp := c.query("restype"), c.query("comp")
	if restype == "account" && comp == "properties" {
		return s.accountInfo(c)
	}
	if restype != "container" {
		// A request for a blob in the root container would land here; we
		// do not serve $root.
		return unsupported(c)
	}
	m := c.r.Method
	switch {
	case comp == "" && m == http.MethodPut:
		return s.createContainer(c)
	case comp == "" && m == http.MethodDelete:
		return s.deleteContainer(c)
	case comp == "" && (m == http.MethodGet || m == http.MethodHead):
		return s.getContainerProps(c, false)
	case comp == "metadata" && (m == http.MethodGet || m == http.MethodHead):
		return s.getContainerProps(c, true)
	case comp == "metadata" && m == http.MethodPut:
		return s.setContainerMetadata(c)
	case comp == "acl" && (m == http.MethodGet || m == http.MethodHead):
		return s.getContainerACL(c)
	case comp == "acl" && m == http.MethodPut:
		return s.setContainerACL(c)
	case comp == "lease" && m == http.MethodPut:
		return s.containerLease(c)
	case comp == "undelete" && m == http.MethodPut:
		return s.restoreContainer(c)
	case comp == "list" && m == http.MethodGet:
		return s.listBlobs(c)
	case comp == "blobs" && m == http.MethodGet:
		return s.findBlobs(c)
	}
	return unsupported(c)
}

func (s *Service) serveBlob(c *call) error {
	if err := validContainerName(c.container); err != nil {
		return err
	}
	if err := validBlobName(c.blob); err != nil {
		return err
	}
	if v, ok := c.r.Header["X-Ms-If-Tags"]; ok {
		// Parsed before anything else, so a malformed condition is 400
		// whatever the blob's state.
		var err error
		if c.ifTags, err = parseTagCondition("x-ms-if-tags", v[0]); err != nil {
			return err
		}
	}
	comp := c.query("comp")
	m := c.r.Method
	switch {
	case c.query("restype") == "account" && comp == "properties":
		return s.accountInfo(c)
	case comp == "" && (m == http.MethodGet || m == http.MethodHead):
		return s.getBlob(c)
	case comp == "" && m == http.MethodPut && c.header("x-ms-copy-source") != "":
		return s.copyBlob(c)
	case comp == "" && m == http.MethodPut:
		return s.putBlob(c)
	case comp == "" && m == http.MethodDelete:
		return s.deleteBlob(c)
	case comp == "properties" && m == http.MethodPut:
		return s.setBlobProps(c)
	case comp == "metadata" && (m == http.MethodGet || m == http.MethodHead):
		return s.getBlobMetadata(c)
	case comp == "metadata" && m == http.MethodPut:
		return s.setBlobMetadata(c)
	case comp == "block" && m == http.MethodPut:
		return s.putBlock(c)
	case comp == "blocklist" && m == http.MethodPut:
		return s.putBlockList(c)
	case comp == "blocklist" && m == http.MethodGet:
		return s.getBlockList(c)
	case comp == "appendblock" && m == http.MethodPut:
		return s.appendBlock(c)
	case comp == "seal" && m == http.MethodPut:
		return s.sealAppendBlob(c)
	case comp == "page" && m == http.MethodPut:
		return s.putPage(c)
	case comp == "pagelist" && m == http.MethodGet:
		return s.getPageRanges(c)
	case comp == "lease" && m == http.MethodPut:
		return s.blobLease(c)
	case comp == "snapshot" && m == http.MethodPut:
		return s.snapshotBlob(c)
	case comp == "copy" && m == http.MethodPut:
		return s.abortCopy(c)
	case comp == "tags" && m == http.MethodGet:
		return s.getTags(c)
	case comp == "tags" && m == http.MethodPut:
		return s.setTags(c)
	case comp == "tier" && m == http.MethodPut:
		return s.setTier(c)
	case comp == "immutabilityPolicies" && m == http.MethodPut:
		return s.setImmutabilityPolicy(c)
	case comp == "immutabilityPolicies" && m == http.MethodDelete:
		return s.deleteImmutabilityPolicy(c)
	case comp == "legalhold" && m == http.MethodPut:
		return s.setLegalHold(c)
	case comp == "incrementalcopy" && m == http.MethodPut:
		return s.incrementalCopy(c)
	case comp == "undelete" && m == http.MethodPut:
		return s.undeleteBlob(c)
	case comp == "expiry" && m == http.MethodPut:
		return s.setExpiry(c)
	case comp == "query" && m == http.MethodPost:
		return s.queryBlob(c)
	}
	return unsupported(c)
}

func unsupported(c *call) error {
	return storage.Errorf(http.StatusBadRequest, "UnsupportedQueryParameter",
		"The operation %s %q with this query is not supported.", c.r.Method, c.r.URL.RawQuery)
}

var errTooLarge = errors.New("blob: request body too large")

func errContainerNotFound() error {
	return storage.Errorf(http.StatusNotFound, "ContainerNotFound", "The specified container does not exist.")
}

func errBlobNotFound() error {
	return storage.Errorf(http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
}

func errHeader(name string) error {
	e := storage.Errorf(http.StatusBadRequest, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.")
	e.Header = http.Header{"X-Ms-Invalid-Header-Name": {name}}
	return e
}

func errQuery(name string) error {
	return storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid: %s.", name)
}

func errMissingHeader(name string) error {
	return storage.Errorf(http.StatusBadRequest, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified: %s.", name)
}

func errInvalidBlobType() error {
	return storage.Errorf(http.StatusConflict, "InvalidBlobType", "The blob type is invalid for this operation.")
}

func errXML() error {
	return storage.Errorf(http.StatusBadRequest, "InvalidXmlDocument", "XML specified is not syntactically valid.")
}

// gcLoop drops uncommitted blocks older than a week, and soft-deleted
// blobs and containers past their retention, hourly; expired blobs every
// minute.
func (s *Service) gcLoop() {
	defer s.wg.Done()
	hourly := time.NewTicker(time.Hour)
	defer hourly.Stop()
	minutely := time.NewTicker(time.Minute)
	defer minutely.Stop()
	for {
		if err := s.sweepBlocks(s.now().Add(-blockGCAge)); err != nil {
			s.log.Warn("blob: sweeping uncommitted blocks", "err", err)
		}
		if err := s.sweepDeleted(s.now()); err != nil {
			s.log.Warn("blob: sweeping soft-deleted blobs", "err", err)
		}
		if err := s.sweepDeletedContainers(s.now()); err != nil {
			s.log.Warn("blob: sweeping deleted containers", "err", err)
		}
	minute:
		for {
			if err := s.sweepExpired(time.Now()); err != nil {
				s.log.Warn("blob: sweeping expired blobs", "err", err)
			}
			select {
			case <-minutely.C:
			case <-hourly.C:
				break minute
			case <-s.closed:
				return
			}
		}
	}
}

// Database is the service's database, for a replica's copy of it.
func (s *Service) Database() *boltlog.DB { return s.db }
