// Package storageserver runs Weft's three storage services (blob, queue,
// table) under one data directory, each behind the storage front end on
// its own port. It is what `weft storage` runs and what `weft server` and
// `weft dev` embed.
package storageserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blob"
	"github.com/weftcloud/weft/internal/storage/boltlog"
	"github.com/weftcloud/weft/internal/storage/queue"
	"github.com/weftcloud/weft/internal/storage/table"
)

// Config says where the services keep their data and where they listen.
type Config struct {
	Data string // the services keep their files in Data/blob, Data/queue, Data/table
	Host string // address to listen on; "" is 127.0.0.1
	// Ports; 0 picks a free port (tests). `weft storage` defaults them to
	// 10000, 10001 and 10002, the emulator's ports.
	BlobPort, QueuePort, TablePort int
	Accounts                       storage.Accounts // nil serves the development account
	Logger                         *slog.Logger
	// Full, when set, is given each count of the accounts' bytes and
	// names the accounts that may no longer grow, each with the reason
	// (their tenant's storage quota); their writes are refused until a
	// later count frees them.
	Full func(bytes map[string]int64) map[string]string
	// CountEvery is how often the accounts' bytes are counted while the
	// services are open here (default a minute).
	CountEvery time.Duration
	// MetricsListen, when set, is a loopback address where GET /metrics
	// serves the storage's metrics (`weft storage --metrics-listen`): the
	// storage alone has no credentials of its own to guard it with. An
	// embedding server serves them on its API instead (Register).
	MetricsListen string
}

// Server is the storage service's listeners and what serves behind
// them: the services on this server's data (Open), another server's
// storage (Forward), or a 503 while neither.
type Server struct {
	cfg      Config
	log      *slog.Logger
	servers  []*http.Server
	handlers map[storage.Service]*atomic.Pointer[http.Handler]
	urls     map[storage.Service]string
	errs     chan error
	wg       sync.WaitGroup
	once     sync.Once

	mu       sync.Mutex
	services []io.Closer
	dbs      map[string]*boltlog.DB

	usage     storage.Usage
	bytes     atomic.Pointer[map[string]int64] // the last count of AccountBytes
	stopCount context.CancelFunc

	figures    *figures
	metricsURL string
}

// Start opens the services and starts serving them. Close stops them.
func Start(cfg Config) (*Server, error) {
	s, err := Listen(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Open(nil); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Listen starts listening on the services' ports; requests get 503
// until Open or Forward says what serves them.
func Listen(cfg Config) (*Server, error) {
	if cfg.Data == "" {
		return nil, errors.New("storageserver: no data directory")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Accounts == nil {
		cfg.Accounts = storage.DevAccounts()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = log
	s := &Server{cfg: cfg, log: log, urls: map[storage.Service]string{}, errs: make(chan error, 3),
		handlers: map[storage.Service]*atomic.Pointer[http.Handler]{}, figures: newFigures()}
	ports := []struct {
		svc  storage.Service
		port int
	}{{storage.Blob, cfg.BlobPort}, {storage.Queue, cfg.QueuePort}, {storage.Table, cfg.TablePort}}
	var listeners []net.Listener
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(p.port)))
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("storageserver: listen for %s: %w", p.svc, err)
		}
		listeners = append(listeners, ln)
		s.urls[p.svc] = "http://" + ln.Addr().String()
		cur := &atomic.Pointer[http.Handler]{}
		s.handlers[p.svc] = cur
		s.setHandler(p.svc, unavailable(p.svc))
		s.servers = append(s.servers, &http.Server{
			Handler:           s.figures.instrument(p.svc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*cur.Load()).ServeHTTP(w, r) })),
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		})
	}
	if cfg.MetricsListen != "" {
		ln, err := s.listenMetrics(cfg.MetricsListen)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, err
		}
		listeners = append(listeners, ln)
	}
	for i, srv := range s.servers {
		s.wg.Add(1)
		go func(srv *http.Server, ln net.Listener) {
			defer s.wg.Done()
			if err := storage.Serve(srv, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errs <- fmt.Errorf("storageserver: serve: %w", err)
			}
		}(srv, listeners[i])
	}
	return s, nil
}

// unavailable answers while no storage serves here: a retryable 503,
// as Azure answers when a partition moves.
func unavailable(svc storage.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storage.WriteError(w, r, svc, storage.Errorf(http.StatusServiceUnavailable, "ServerBusy", "The storage service is changing servers; retry."))
	})
}

func (s *Server) setHandler(svc storage.Service, h http.Handler) { s.handlers[svc].Store(&h) }

// Open opens the services on this server's data and serves them. With
// rep, each service hands its changes to what rep returns for the name
// of its directory (blob, queue, table).
func (s *Server) Open(rep func(db string) storage.Replication) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.services != nil {
		return errors.New("storageserver: services open already")
	}
	replication := func(db string) storage.Replication {
		if rep == nil {
			return nil
		}
		return rep(db)
	}
	log, data := s.log, s.cfg.Data
	b, err := blob.OpenWith(filepath.Join(data, "blob"), storage.Options{Logger: log.With("service", "blob"), Replication: replication("blob"), Synced: s.figures.synced("blob")})
	if err != nil {
		return fmt.Errorf("storageserver: %w", err)
	}
	q, err := queue.OpenWith(filepath.Join(data, "queue"), storage.Options{Logger: log.With("service", "queue"), Replication: replication("queue"), Synced: s.figures.synced("queue")})
	if err != nil {
		b.Close()
		return fmt.Errorf("storageserver: %w", err)
	}
	t, err := table.OpenWith(filepath.Join(data, "table"), storage.Options{Logger: log.With("service", "table"), Replication: replication("table"), Synced: s.figures.synced("table")})
	if err != nil {
		b.Close()
		q.Close()
		return fmt.Errorf("storageserver: %w", err)
	}
	s.services = []io.Closer{b, q, t}
	s.dbs = map[string]*boltlog.DB{"blob": b.Database(), "queue": q.Database(), "table": t.Database()}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopCount = cancel
	go s.countBytes(ctx, b)
	for svc, h := range map[storage.Service]storage.Handler{storage.Blob: b, storage.Queue: q, storage.Table: t} {
		s.setHandler(svc, storage.NewFront(svc, s.cfg.Accounts, h, &s.usage, log.With("service", string(svc))))
	}
	log.Info("storage serving", "blob", s.urls[storage.Blob], "queue", s.urls[storage.Queue], "table", s.urls[storage.Table], "data", data)
	return nil
}

// Transactions returns each account's requests served here (by the
// services on this server's data, not those forwarded to another's) since
// the process started.
func (s *Server) Transactions() map[string]int64 { return s.usage.Transactions() }

// AccountBytes returns the bytes each account's blobs held at the last
// count, nil while the services are not open here. (Queue messages and
// table entities are not counted.)
func (s *Server) AccountBytes() map[string]int64 {
	if m := s.bytes.Load(); m != nil {
		return *m
	}
	return nil
}

// countBytes counts the accounts' bytes at once and every CountEvery
// until ctx ends (the services close), and tells Config.Full.
func (s *Server) countBytes(ctx context.Context, b *blob.Service) {
	every := s.cfg.CountEvery
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		counted, err := b.AccountBytes()
		if err != nil {
			s.log.Error("storage: accounts' bytes not counted", "err", err)
		} else {
			s.bytes.Store(&counted)
			if s.cfg.Full != nil {
				s.usage.SetFull(s.cfg.Full(counted))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Databases returns the open services' databases by directory name, nil
// while they are not open.
func (s *Server) Databases() map[string]*boltlog.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dbs
}

// Forward serves requests by passing them to another server's storage,
// at the base URLs target gives per service; "" answers 503. The
// services, if open, are closed.
func (s *Server) Forward(target func(storage.Service) string) error {
	for svc := range s.handlers {
		s.setHandler(svc, storage.NewForward(svc, func() string { return target(svc) }, s.log))
	}
	return s.closeServices()
}

// CloseServices stops serving (503) and closes the services; requests in
// flight in them fail.
func (s *Server) CloseServices() error {
	for svc := range s.handlers {
		s.setHandler(svc, unavailable(svc))
	}
	return s.closeServices()
}

func (s *Server) closeServices() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopCount != nil {
		s.stopCount()
		s.stopCount = nil
	}
	var errs []error
	for i := len(s.services) - 1; i >= 0; i-- {
		errs = append(errs, s.services[i].Close())
	}
	s.services, s.dbs = nil, nil
	s.bytes.Store(nil)
	s.usage.SetFull(nil)
	return errors.Join(errs...)
}

// Run serves until ctx ends or a server fails, then stops cleanly. It
// returns nil after ctx ends.
func Run(ctx context.Context, cfg Config) error {
	s, err := Start(cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return s.Close()
	case err := <-s.errs:
		_ = s.Close()
		return err
	}
}

// URL returns a service's base address, e.g. http://127.0.0.1:10000; an
// account's path-style endpoint is URL + "/" + account.
func (s *Server) URL(svc storage.Service) string { return s.urls[svc] }

// BlobEndpoint, QueueEndpoint and TableEndpoint return the development
// account's path-style endpoints, as a connection string wants them.
func (s *Server) BlobEndpoint() string  { return s.urls[storage.Blob] + "/" + storage.DevAccount }
func (s *Server) QueueEndpoint() string { return s.urls[storage.Queue] + "/" + storage.DevAccount }
func (s *Server) TableEndpoint() string { return s.urls[storage.Table] + "/" + storage.DevAccount }

// ConnectionString is the development account's connection string.
func (s *Server) ConnectionString() string {
	return "DefaultEndpointsProtocol=http;AccountName=" + storage.DevAccount + ";AccountKey=" + storage.DevKey +
		";BlobEndpoint=" + s.BlobEndpoint() + ";QueueEndpoint=" + s.QueueEndpoint() + ";TableEndpoint=" + s.TableEndpoint() + ";"
}

// Close stops accepting requests, lets those in flight finish (for up to
// ten seconds) and closes the services.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		}
		s.wg.Wait()
		err = s.CloseServices()
	})
	return err
}
