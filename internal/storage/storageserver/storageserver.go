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
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blob"
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
}

// Server is the running storage services.
type Server struct {
	log      *slog.Logger
	services []io.Closer
	servers  []*http.Server
	urls     map[storage.Service]string
	errs     chan error
	wg       sync.WaitGroup
	once     sync.Once
}

// Start opens the services and starts serving them. Close stops them.
func Start(cfg Config) (*Server, error) {
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
	s := &Server{log: log, urls: map[storage.Service]string{}, errs: make(chan error, 3)}
	type opened struct {
		svc  storage.Service
		port int
		h    storage.Handler
	}
	var parts []opened
	b, err := blob.Open(filepath.Join(cfg.Data, "blob"), log.With("service", "blob"))
	if err != nil {
		return nil, fmt.Errorf("storageserver: %w", err)
	}
	s.services = append(s.services, b)
	parts = append(parts, opened{storage.Blob, cfg.BlobPort, b})
	q, err := queue.Open(filepath.Join(cfg.Data, "queue"), log.With("service", "queue"))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("storageserver: %w", err)
	}
	s.services = append(s.services, q)
	parts = append(parts, opened{storage.Queue, cfg.QueuePort, q})
	t, err := table.Open(filepath.Join(cfg.Data, "table"), log.With("service", "table"))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("storageserver: %w", err)
	}
	s.services = append(s.services, t)
	parts = append(parts, opened{storage.Table, cfg.TablePort, t})

	var listeners []net.Listener
	for _, p := range parts {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(p.port)))
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			s.Close()
			return nil, fmt.Errorf("storageserver: listen for %s: %w", p.svc, err)
		}
		listeners = append(listeners, ln)
		s.urls[p.svc] = "http://" + ln.Addr().String()
		s.servers = append(s.servers, &http.Server{
			Handler:           storage.NewFront(p.svc, cfg.Accounts, p.h, log.With("service", string(p.svc))),
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		})
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
	log.Info("storage started", "blob", s.urls[storage.Blob], "queue", s.urls[storage.Queue], "table", s.urls[storage.Table], "data", cfg.Data)
	return s, nil
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
	var errs []error
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		}
		s.wg.Wait()
		for i := len(s.services) - 1; i >= 0; i-- {
			if err := s.services[i].Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
