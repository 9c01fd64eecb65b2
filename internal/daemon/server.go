package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/accounts"
	"github.com/weftcloud/weft/internal/audit"
	"github.com/weftcloud/weft/internal/cluster"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/drives"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/metering"
	"github.com/weftcloud/weft/internal/metrics"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/pki"
	"github.com/weftcloud/weft/internal/portal"
	"github.com/weftcloud/weft/internal/raftstore"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/blobclient"
	"github.com/weftcloud/weft/internal/storage/placement"
	"github.com/weftcloud/weft/internal/storage/replicated"
	"github.com/weftcloud/weft/internal/storage/storageserver"
	"github.com/weftcloud/weft/internal/tenants"
	"github.com/weftcloud/weft/internal/vms"
)

var _ replicated.Placement = (*client.Client)(nil)

// controller is a running `weft server`: the parts in start order.
type controller struct {
	log     *slog.Logger
	store   *raftstore.Store
	lb      *lb.Balancer
	ctl     *fabric.Controller
	http    *http.Server
	addr    string // where the API listens, host:port
	storage *storageserver.Server
	accts   *accounts.Store
	tenants *tenants.Store
	done    chan error // the reconciler's and the API server's exits
	cancel  context.CancelFunc
}

func defaultLogger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startController opens the state and starts the controller's parts; the
// API is listening when it returns. Every wait on the way (for the other
// servers, a leader, the storage) ends when ctx does, with ctx's error.
func startController(ctx context.Context, cfg ServerConfig) (_ *controller, err error) {
	log := defaultLogger(cfg.Logger)
	if cfg.Data == "" {
		return nil, errors.New("server: --data is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.LBHost == "" {
		host, _, _ := net.SplitHostPort(cfg.Listen)
		cfg.LBHost = host
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	c := &controller{log: log, done: make(chan error, 2)}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	// The API listens first: servers forming a cluster ask each other who
	// they are before any of them has state.
	var creds *pki.Credentials
	if cfg.TLSDir != "" {
		if creds, err = pki.LoadServer(cfg.TLSDir, cfg.Name); err != nil {
			return nil, fmt.Errorf("server: --tls-dir: %w", err)
		}
		creds.AgentLifetime = cfg.AgentCertLifetime
	} else if err := checkPlain(cfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", cfg.Listen, err)
	}
	c.addr = ln.Addr().String()
	raftAddr, err := cluster.RaftAddress(cfg.Listen)
	if err != nil {
		ln.Close()
		return nil, err
	}
	self := api.ServerSelf{Name: cfg.Name, Raft: raftAddr, API: "http://" + c.addr}
	auth := &authenticator{creds: creds, join: &joinTokens{creds: creds}}
	var link cluster.Link
	var nodes *http.Client
	if creds != nil {
		ln = tls.NewListener(ln, creds.ServerTLS(false))
		self.API = "https://" + c.addr
		link = cluster.NewLink(creds.ClientTLS(), "")
		nodes = &http.Client{Transport: &http.Transport{TLSClientConfig: creds.AgentDialTLS()}}
	} else {
		// One machine: the operator's token is kept in the data folder and
		// for the user who started the server; the server's own calls to
		// its API carry a token that never leaves this process.
		if auth.admin, err = plainAdminToken(cfg.Data, self.API); err != nil {
			ln.Close()
			return nil, err
		}
		auth.self = pki.NewToken()
		link = cluster.NewLink(nil, auth.self)
	}
	// The handler is swapped once the controller is built.
	var handler atomic.Pointer[http.Handler]
	setHandler := func(h http.Handler) { handler.Store(&h) }
	setHandler(cluster.SelfHandler(self))
	c.http = &http.Server{
		Handler:           auth.enforce(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) })),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		err := c.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		c.done <- err
	}()
	if c.store, err = openStore(ctx, cfg, self, link, creds, log); err != nil {
		return nil, err
	}
	pkgs, err := pkgstore.Open(filepath.Join(cfg.Data, "packages"))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	c.lb = lb.New(cfg.LBHost, log.With("part", "lb"))

	blobPort, queuePort, tablePort := orDefault(cfg.BlobPort, DefaultBlobPort), orDefault(cfg.QueuePort, DefaultQueuePort), orDefault(cfg.TablePort, DefaultTablePort)
	own := accounts.Endpoints{
		Blob:  fmt.Sprintf("http://%s:%d", cfg.LBHost, blobPort),
		Queue: fmt.Sprintf("http://%s:%d", cfg.LBHost, queuePort),
		Table: fmt.Sprintf("http://%s:%d", cfg.LBHost, tablePort),
	}
	accts := accounts.New(c.store, func() accounts.Endpoints {
		if !cfg.StorageDisabled {
			return own
		}
		// A server without storage names the primary's.
		if pl, _, ok := placement.Current(c.store); ok {
			for _, m := range placement.Members(c.store) {
				if m.Name == pl.Primary {
					return accounts.Endpoints{Blob: m.Blob, Queue: m.Queue, Table: m.Table}
				}
			}
		}
		return own
	}, cfg.DevAccount)
	c.accts = accts

	tenantStore := tenants.New(c.store, tenants.DefaultQuota())
	c.tenants = tenantStore
	var node *replicated.Node
	if !cfg.StorageDisabled {
		c.storage, err = storageserver.Listen(storageserver.Config{
			Data: filepath.Join(cfg.Data, "storage"), Host: cfg.LBHost,
			BlobPort: blobPort, QueuePort: queuePort, TablePort: tablePort,
			Accounts: accts, Full: storageFull(accts, tenantStore), Logger: log.With("part", "storage"),
		})
		if err != nil {
			return nil, fmt.Errorf("server: storage: %w", err)
		}
		node = replicated.New(replicated.Config{
			Self: placement.Member{Name: cfg.Name, API: self.API,
				Blob: c.storage.URL(storage.Blob), Queue: c.storage.URL(storage.Queue), Table: c.storage.URL(storage.Table)},
			Dir:   filepath.Join(cfg.Data, "storage"),
			State: c.store,
			// Through this server's API, which passes writes to the leader.
			Placement: client.New(self.API).WithTransport(link.Client().Transport),
			Peers:     link.Client(), Storage: c.storage, InContact: c.store.InContact,
			Logger: log.With("part", "storage"),
		})
	}
	sys, err := systemAccount(ctx, accts, c.storage)
	if err != nil {
		return nil, err
	}
	disks := vms.NewDisks(sys.url, sys.name, sys.key)
	disks.ServedBy(func() []string {
		var urls []string
		for _, m := range placement.Members(c.store) {
			urls = append(urls, m.Blob)
		}
		return urls
	})
	peers := cluster.NewServer(c.store, self, link, log.With("part", "cluster"))
	peers.Removed = func(ctx context.Context, name string) error { return placement.Unregister(ctx, c.store, name) }
	auditLog := audit.New(c.store, 0, log.With("part", "audit"))
	driveMgr := drives.New(c.store, drives.QuotaFunc(func(tenant string, size api.Bytes) error {
		return c.ctl.CheckDiskQuota(tenant, size)
	}), disks, log.With("part", "drives"))
	sealKey, err := extensions.ServerKey(cfg.TLSDir, cfg.Data)
	if err != nil {
		return nil, err
	}
	sealer, err := extensions.NewSealer(sealKey)
	if err != nil {
		return nil, err
	}
	c.ctl = fabric.New(fabric.Config{
		Drives:  driveMgr,
		Sealer:  sealer,
		Tenants: tenantStore,
		Name:    cfg.Name, HeartbeatTTL: cfg.HeartbeatTTL, UpgradeTimeout: cfg.UpgradeTimeout,
		ReservedPorts:        reservedPorts(c.addr, raftAddr, cfg.StorageDisabled, blobPort, queuePort, tablePort),
		AllowPrivilegedPorts: cfg.AllowPrivilegedPorts,
		Logger:               log.With("part", "fabric"), DiskAccess: disks.Access, Leader: c.store.IsLeader,
		FetchPackage: func(ctx context.Context, digest string) (io.ReadCloser, error) {
			return peers.FetchFromPeers(ctx, "/v1/packages/"+digest)
		},
	}, c.store, pkgs, c.lb)
	imgs := images.New(c.store, sys.client(), func(ctx context.Context, digest string) (io.ReadCloser, error) {
		return peers.FetchFromPeers(ctx, "/v1/imagefiles/"+digest)
	}, log.With("part", "images"))
	vmMgr := vms.New(c.ctl, imgs, disks, log.With("part", "vms"))
	auth.ctl.Store(c.ctl)
	certs := &certificates{creds: creds, ctl: c.ctl, log: log.With("part", "pki")}
	apiHandler := access.NewMux()
	apiHandler.Handle("POST "+joinTokenPath, rotateJoinToken(c.store, creds, log.With("part", "pki")))
	apiHandler.HandleFunc("POST "+joinPath, certs.join)
	apiHandler.HandleFunc("POST "+renewPath, certs.renew)
	placementRoutes := placement.Handler(c.store)
	for _, route := range []string{"POST /v1/storage/members", "POST /v1/storage/insync", "GET /v1/storage/config"} {
		apiHandler.Handle(route, placementRoutes)
	}
	ledger := metering.NewLedger(c.store)
	meteringRoutes := controlapi.Metering(ledger, nil, log.With("part", "api"))
	for _, route := range controlapi.MeteringRoutes {
		apiHandler.Handle(route, meteringRoutes)
	}
	apiHandler.Pass(controlapi.New(controlapi.Config{
		Controller: c.ctl, Accounts: accts, Images: imgs, VMs: vmMgr, Drives: driveMgr, Extensions: extensions.New(c.store, c.ctl), Tenants: tenantStore, Audit: auditLog, Ledger: ledger,
		Nodes: nodes, Portal: self.API, Log: log.With("part", "api"),
	}))
	auth.tokens.Store(tenantStore)
	var st state.Store = c.store
	auth.join.st.Store(&st)
	routes := access.NewMux()
	// Replication is between this server and the caller, never forwarded.
	if node != nil {
		routes.Handle("/v1/storage/replica/", serversOnly(creds, node.Handler()))
	}
	routes.Handle("/v1/", peers.Handler(auditLog.Middleware(apiHandler)))
	metricsHandler, err := c.metricsHandler(node)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	routes.Handle("GET "+metrics.Path, metricsHandler)
	// The portal: every other path. It calls this server's API through
	// the whole chain (authentication, access table, forwarding) with the
	// signed-in user's token, so it may do no more than that token.
	routes.Handle("/", portal.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.http.Handler.ServeHTTP(w, r)
	}), portal.Options{Logger: log.With("part", "portal")}))
	setHandler(routes)

	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	reconciler := &placement.Reconciler{Store: c.store, Self: cfg.Name, Lease: replicated.Lease,
		Log: log.With("part", "storage"), Probe: probeStorage(link)}
	// The meter, like the reconcilers, runs on the leader only.
	meter := metering.New(metering.Config{Store: c.store, Footprint: c.ctl.Footprint, Logger: log.With("part", "metering")})
	if node != nil {
		go node.Run(runCtx)
	}
	reporter := &metering.Reporter{Server: cfg.Name, Collect: usageCounts(c.lb, c.storage, accts),
		Send: metering.Client{HTTP: link.Client(), Base: self.API}.Send, Logger: log.With("part", "metering")}
	go reporter.Run(runCtx)
	go func() {
		cluster.Lead(runCtx, c.store, log.With("part", "cluster"), func(ctx context.Context) {
			if err := tenantStore.EnsureDefault(ctx); err != nil && ctx.Err() == nil {
				log.Error("the default tenant was not made", "err", err)
			}
			if err := accts.IndexByTenant(ctx); err != nil && ctx.Err() == nil {
				log.Error("storage accounts not indexed by tenant", "err", err)
			}
			go reconciler.Run(ctx)
			go meter.Run(ctx)
			c.ctl.Run(ctx)
		})
		if runCtx.Err() == nil {
			c.done <- errors.New("the replicated state stopped")
		}
	}()
	// The system containers need the storage, which serves once the
	// cluster placed it.
	if node != nil {
		select {
		case <-node.Serving():
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Minute):
			return nil, errors.New("server: the storage did not start within a minute: is a majority of the servers up?")
		}
	}
	if err := initSystem(ctx, imgs.Init, disks.Init); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	go c.ctl.RunLB(runCtx)
	go c.ctl.RunPackages(runCtx)
	go imgs.RunCopies(runCtx)
	log.Info("controller started", "api", "http://"+c.addr, "name", cfg.Name, "data", cfg.Data)
	return c, nil
}

// initSystem runs the system containers' inits until they succeed, for up
// to 30 seconds: a primary chosen a moment ago may still be opening.
func initSystem(ctx context.Context, inits ...func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var errs []error
		for _, init := range inits {
			errs = append(errs, init(ctx))
		}
		err := errors.Join(errs...)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// probeStorage asks a server whether its storage answers and serves as the
// primary: what the leader replaces a lost storage primary on.
func probeStorage(link cluster.Link) func(context.Context, placement.Member) (bool, error) {
	return func(ctx context.Context, m placement.Member) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.API+"/v1/storage/replica/status", nil)
		if err != nil {
			return false, err
		}
		resp, err := link.Client().Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("storage of %s: %s", m.Name, resp.Status)
		}
		var st replicated.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return false, fmt.Errorf("storage of %s: %w", m.Name, err)
		}
		return st.Role == replicated.RolePrimary, nil
	}
}

// system is the storage service's system account, where Weft keeps images
// and VM disks; zero when the server runs without storage.
type system struct {
	url, name string
	key       []byte
}

func (s system) client() *blobclient.Client {
	if s.url == "" {
		return nil
	}
	return blobclient.New(s.url, s.name, s.key)
}

func systemAccount(ctx context.Context, accts *accounts.Store, srv *storageserver.Server) (system, error) {
	if srv == nil {
		return system{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	name, key, err := systemAccountKey(ctx, accts)
	if err != nil {
		return system{}, fmt.Errorf("server: %w", err)
	}
	return system{url: srv.URL(storage.Blob), name: name, key: key}, nil
}

// close stops the parts in reverse order.
func (c *controller) close() {
	if c.store != nil {
		// Stop leading first: a leader that stopped serving would declare
		// every node down while its requests fail.
		if err := c.store.StepDown(); err != nil {
			c.log.Warn("leadership not handed over before stopping", "err", err)
		}
	}
	if c.cancel != nil {
		c.cancel()
	}
	if c.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.http.Shutdown(ctx)
		cancel()
	}
	if c.storage != nil {
		c.storage.Close()
	}
	if c.lb != nil {
		c.lb.Close()
	}
	if c.store != nil {
		c.store.Close()
	}
}

// reservedPorts names the ports this server listens on, which no service
// may publish an endpoint on: its API (api, host:port), Raft (raft) and,
// unless disabled, its storage ports.
func reservedPorts(api, raft string, noStorage bool, blob, queue, table int) map[int]string {
	ports := map[int]string{}
	for what, addr := range map[string]string{"API": api, "Raft": raft} {
		if _, p, err := net.SplitHostPort(addr); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n > 0 {
				ports[n] = what
			}
		}
	}
	if !noStorage {
		ports[blob], ports[queue], ports[table] = "storage blob", "storage queue", "storage table"
	}
	return ports
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// RunServer runs a controller until ctx ends, in every phase: a server
// still waiting for the others to form a cluster stops too, and returns nil.
func RunServer(ctx context.Context, cfg ServerConfig) error {
	c, err := startController(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			defaultLogger(cfg.Logger).Info("controller stopping before it started", "reason", err)
			return nil
		}
		return err
	}
	defer c.close()
	select {
	case <-ctx.Done():
		c.log.Info("controller stopping")
		return nil
	case err := <-c.done:
		if err == nil || errors.Is(err, context.Canceled) {
			return nil
		}
		return fmt.Errorf("server: %w", err)
	}
}
