// Package table implements the Azure Table service on bbolt: tables,
// entities with EDM-typed properties, OData $filter/$select/$top queries
// with continuation, entity group transactions, and the three JSON
// metadata formats, so the official aztables SDK works unchanged.
//
// Every acknowledged write is fsynced before the answer; concurrent writes
// share a commit (group commit). Entities are keyed PartitionKey, 0x00,
// RowKey, so a cursor yields Azure's order and key-bounded queries seek.
package table

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// Request body limits: an entity is at most 1 MiB, but its JSON may be
// larger (base64, escapes); a batch's payload is at most 4 MiB, its
// multipart framing included, as the reference puts it.
const (
	maxEntityBody = 4 << 20
	maxBatchBody  = 4 << 20
)

// Service serves the Table REST API for every account behind its front end.
type Service struct {
	st  *store
	log *slog.Logger
}

var _ storage.Handler = (*Service)(nil)

// Open opens (creating if needed) the table store under dir.
func Open(dir string, logger *slog.Logger) (*Service, error) {
	return OpenWith(dir, storage.Options{Logger: logger})
}

// OpenWith is Open with options.
func OpenWith(dir string, opt storage.Options) (*Service, error) {
	logger := opt.Log()
	st, err := openStore(dir, opt.Database())
	if err != nil {
		return nil, err
	}
	return &Service{st: st, log: logger}, nil
}

// Close waits for queued writes and closes the store.
func (s *Service) Close() error { return s.st.close() }

// resource is a parsed request path.
type resource struct {
	table    string // as written in the URL
	keyed    bool   // (PartitionKey='..',RowKey='..') given
	pk, rk   string
	tableOp  bool // the Tables collection or Tables('name')
	tableArg string
}

// ServeStorage routes one authenticated request.
func (s *Service) ServeStorage(w http.ResponseWriter, r *http.Request, req *storage.Request) {
	if err := s.serve(w, r, req); err != nil {
		storage.WriteError(w, r, storage.Table, err)
	}
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request, req *storage.Request) error {
	if req.Path == "$batch" {
		if r.Method != http.MethodPost {
			return methodNotAllowed(r)
		}
		return s.batch(w, r, req)
	}
	if req.Path == "" {
		return s.serveService(w, r, req)
	}
	path := req.Path
	if strings.EqualFold(path, "Tables/") {
		// Some clients create tables with POST .../Tables/; Azure takes it.
		path = path[:len(path)-1]
	}
	res, err := parseResource(path)
	if err != nil {
		return err
	}
	method := r.Method
	// Clients behind proxies that drop MERGE tunnel it through POST.
	if xm := r.Header.Get("X-HTTP-Method"); xm != "" {
		if method != http.MethodPost {
			return storage.Errorf(http.StatusBadRequest, "XMethodNotUsingPost", "The X-HTTP-Method header is only allowed on POST.")
		}
		method = strings.ToUpper(xm)
	}
	if res.tableOp {
		switch {
		case res.tableArg == "" && method == http.MethodGet:
			return s.queryTables(w, r, req, "")
		case res.tableArg == "" && method == http.MethodPost:
			return s.createTable(w, r, req)
		case res.tableArg != "" && method == http.MethodDelete:
			return s.deleteTable(w, r, req, res.tableArg)
		case res.tableArg != "" && method == http.MethodGet:
			return s.queryTables(w, r, req, res.tableArg)
		}
		return methodNotAllowed(r)
	}
	if r.URL.Query().Get("comp") == "acl" {
		return s.serveACL(w, r, req, res)
	}
	if !res.keyed {
		switch method {
		case http.MethodGet:
			return s.queryEntities(w, r, req, res)
		case http.MethodPost:
			return s.insertEntity(w, r, req, res)
		}
		return methodNotAllowed(r)
	}
	switch method {
	case http.MethodGet:
		return s.getEntity(w, r, req, res)
	case http.MethodPut:
		return s.writeEntity(w, r, req, res, false)
	case "MERGE", http.MethodPatch:
		return s.writeEntity(w, r, req, res, true)
	case http.MethodDelete:
		return s.deleteEntity(w, r, req, res)
	}
	return methodNotAllowed(r)
}

func methodNotAllowed(r *http.Request) error {
	return storage.Errorf(http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb %s.", r.Method)
}

// parseResource splits "Tables", "Tables('t')", "t", "t()" and
// "t(PartitionKey='p',RowKey='r')".
func parseResource(p string) (resource, error) {
	name, args, hasArgs := p, "", false
	if i := strings.IndexByte(p, '('); i >= 0 {
		if !strings.HasSuffix(p, ")") {
			return resource{}, badResource(p)
		}
		name, args, hasArgs = p[:i], p[i+1:len(p)-1], true
	}
	if strings.Contains(name, "/") || name == "" {
		return resource{}, badResource(p)
	}
	if strings.EqualFold(name, "Tables") {
		res := resource{tableOp: true}
		if hasArgs && args != "" {
			v, rest, err := quoted(args)
			if err != nil || rest != "" {
				return resource{}, badResource(p)
			}
			res.tableArg = v
		}
		return res, nil
	}
	res := resource{table: name}
	if !hasArgs || strings.TrimSpace(args) == "" {
		return res, nil
	}
	var havePK, haveRK bool
	for args != "" {
		eq := strings.IndexByte(args, '=')
		if eq < 0 {
			return resource{}, badResource(p)
		}
		key := strings.TrimSpace(args[:eq])
		v, rest, err := quoted(strings.TrimSpace(args[eq+1:]))
		if err != nil {
			return resource{}, badResource(p)
		}
		switch key {
		case "PartitionKey":
			res.pk, havePK = v, true
		case "RowKey":
			res.rk, haveRK = v, true
		default:
			return resource{}, badResource(p)
		}
		rest = strings.TrimSpace(rest)
		if rest != "" {
			if rest[0] != ',' {
				return resource{}, badResource(p)
			}
			rest = strings.TrimSpace(rest[1:])
		}
		args = rest
	}
	if !havePK || !haveRK {
		return resource{}, badResource(p)
	}
	res.keyed = true
	return res, nil
}

// quoted reads a leading quoted string (doubled quotes escaped) and returns
// the rest.
func quoted(s string) (string, string, error) {
	if s == "" || s[0] != '\'' {
		return "", "", errors.New("not quoted")
	}
	v, n, err := lexQuoted(s)
	if err != nil {
		return "", "", err
	}
	return v, s[n:], nil
}

func badResource(p string) error {
	return storage.Errorf(http.StatusBadRequest, "InvalidUri", "The requested URI does not represent any resource on the server: %q.", p)
}

// baseURL is the service address clients used, account included, with a
// trailing slash; it prefixes odata.metadata and odata.id.
func baseURL(r *http.Request, req *storage.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	prefix := strings.TrimSuffix(r.URL.Path, req.Path)
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return scheme + "://" + r.Host + prefix
}

func setCommon(w http.ResponseWriter) {
	h := w.Header()
	h.Set("DataServiceVersion", "3.0;")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
}

// preferNoContent reports the client's Prefer: return-no-content.
func preferNoContent(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Prefer"), "return-no-content")
}

// Database is the service's database, for a replica's copy of it.
func (s *Service) Database() *boltlog.DB { return s.st.db }
