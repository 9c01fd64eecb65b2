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
	"github.com/weftcloud/weft/internal/networks"
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
	"github.com/weftcloud/weft/internal/vpn"
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
	// runCtx is the loops' context, ended by cancel at close.
	runCtx context.Context
	cancel context.CancelFunc
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
//
// The parts, in start order: the API listener (servers forming a cluster
// ask each other who they are before any has state), the replicated
// state, the stores over it, the storage service, the fabric and what
// hangs on it, the routes, the leader's loops, then the system containers
// once the storage serves.
func startController(ctx context.Context, cfg ServerConfig) (_ *controller, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	c := &controller{log: defaultLogger(cfg.Logger), done: make(chan error, 2)}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	e, err := c.listen(cfg)
	if err != nil {
		return nil, err
	}
	if c.store, err = openStore(ctx, cfg, e.self, e.link, e.creds, c.log); err != nil {
		return nil, err
	}
	p, err := c.build(ctx, cfg, e)
	if err != nil {
		return nil, err
	}
	routes, err := c.routes(e, p)
	if err != nil {
		return nil, err
	}
	e.setHandler(routes)
	c.run(cfg, e, p)
	// The system containers need the storage, which serves once the
	// cluster placed it.
	if p.node != nil {
		select {
		case <-p.node.Serving():
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Minute):
			return nil, errors.New("server: the storage did not start within a minute: is a majority of the servers up?")
		}
	}
	if err := initSystem(ctx, p.images.Init, p.disks.Init); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	go c.ctl.RunLB(c.runCtx)
	go c.ctl.RunPackages(c.runCtx)
	go p.images.RunCopies(c.runCtx)
	c.log.Info("controller started", "api", "http://"+c.addr, "name", cfg.Name, "data", cfg.Data)
	return c, nil
}

// withDefaults is cfg with its defaults filled in, the one place they are
// (the CLI shows the same constants), or an error naming what is missing.
func (cfg ServerConfig) withDefaults() (ServerConfig, error) {
	if cfg.Data == "" {
		return cfg, errors.New("server: --data is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	for _, f := range []struct {
		flag string
		v    float64
	}{{"--down-wave-fraction", cfg.DownWaveFraction}, {"--down-wave-nodes", float64(cfg.DownWaveNodes)}, {"--down-wave-rate", cfg.DownWaveRate}, {"--down-wave-halt", cfg.DownWaveHalt}} {
		if !(f.v >= 0) { // NaN too
			return cfg, fmt.Errorf("server: %s %v: must not be negative", f.flag, f.v)
		}
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
	}
	if cfg.LBHost == "" {
		cfg.LBHost, _, _ = net.SplitHostPort(cfg.Listen)
	}
	cfg.BlobPort = orDefault(cfg.BlobPort, DefaultBlobPort)
	cfg.QueuePort = orDefault(cfg.QueuePort, DefaultQueuePort)
	cfg.TablePort = orDefault(cfg.TablePort, DefaultTablePort)
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return cfg, fmt.Errorf("server: %w", err)
	}
	return cfg, nil
}

// edge is how the server meets the others: its API listener and the
// handler behind it, who it is, how callers are authenticated and how it
// calls the other servers and the nodes.
type edge struct {
	self  api.ServerSelf
	raft  string // the Raft address
	creds *pki.Credentials
	auth  *authenticator
	link  cluster.Link
	nodes *http.Client // to the node agents' APIs
	// setHandler replaces what the API serves: SelfHandler until the
	// parts are built, then the routes.
	setHandler func(http.Handler)
}

// listen starts serving the API: for now SelfHandler only, behind the
// authentication every request goes through.
func (c *controller) listen(cfg ServerConfig) (*edge, error) {
	e := &edge{}
	var err error
	if cfg.TLSDir != "" {
		if e.creds, err = pki.LoadServer(cfg.TLSDir, cfg.Name); err != nil {
			return nil, fmt.Errorf("server: --tls-dir: %w", err)
		}
		e.creds.AgentLifetime = cfg.AgentCertLifetime
	} else if err := checkPlain(cfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", cfg.Listen, err)
	}
	c.addr = ln.Addr().String()
	if e.raft, err = cluster.RaftAddress(cfg.Listen); err != nil {
		ln.Close()
		return nil, err
	}
	e.self = api.ServerSelf{Name: cfg.Name, Raft: e.raft, API: "http://" + c.addr}
	e.auth = &authenticator{creds: e.creds, join: &joinTokens{creds: e.creds}}
	if e.creds != nil {
		ln = tls.NewListener(ln, e.creds.ServerTLS(false))
		e.self.API = "https://" + c.addr
		e.link = cluster.NewLink(e.creds.ClientTLS(), "")
		e.nodes = &http.Client{Transport: &http.Transport{TLSClientConfig: e.creds.AgentDialTLS()}}
	} else {
		// One machine: the operator's token is kept in the data folder and
		// for the user who started the server; the server's own calls to
		// its API carry a token that never leaves this process.
		if e.auth.admin, err = plainAdminToken(cfg.Data, e.self.API); err != nil {
			ln.Close()
			return nil, err
		}
		e.auth.self = pki.NewToken()
		e.link = cluster.NewLink(nil, e.auth.self)
	}
	var handler atomic.Pointer[http.Handler]
	e.setHandler = func(h http.Handler) { handler.Store(&h) }
	e.setHandler(cluster.SelfHandler(e.self))
	c.http = &http.Server{
		Handler:           e.auth.enforce(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) })),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		err := c.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		c.done <- err
	}()
	return e, nil
}

// parts are the controller's parts over the replicated state, beside the
// ones the controller struct keeps for close.
type parts struct {
	node       *replicated.Node // nil: no storage on this server
	sys        system
	disks      *vms.Disks
	peers      *cluster.Server
	audit      *audit.Log
	drives     *drives.Manager
	images     *images.Store
	vms        *vms.Manager
	ledger     *metering.Ledger
	extensions *extensions.Store
	vpns       *vpn.Manager
}

// build makes the parts over the state, c.store.
func (c *controller) build(ctx context.Context, cfg ServerConfig, e *edge) (*parts, error) {
	log := c.log
	pkgs, err := pkgstore.Open(filepath.Join(cfg.Data, "packages"))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	c.lb = lb.New(cfg.LBHost, log.With("part", "lb"))
	own := accounts.Endpoints{
		Blob:  fmt.Sprintf("http://%s:%d", cfg.LBHost, cfg.BlobPort),
		Queue: fmt.Sprintf("http://%s:%d", cfg.LBHost, cfg.QueuePort),
		Table: fmt.Sprintf("http://%s:%d", cfg.LBHost, cfg.TablePort),
	}
	c.accts = accounts.New(c.store, func() accounts.Endpoints {
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
	c.tenants = tenants.New(c.store, tenants.DefaultQuota())
	p := &parts{}
	if !cfg.StorageDisabled {
		c.storage, err = storageserver.Listen(storageserver.Config{
			Data: filepath.Join(cfg.Data, "storage"), Host: cfg.LBHost,
			BlobPort: cfg.BlobPort, QueuePort: cfg.QueuePort, TablePort: cfg.TablePort,
			Accounts: c.accts, Full: storageFull(c.accts, c.tenants), Logger: log.With("part", "storage"),
		})
		if err != nil {
			return nil, fmt.Errorf("server: storage: %w", err)
		}
		p.node = replicated.New(replicated.Config{
			Self: placement.Member{Name: cfg.Name, API: e.self.API,
				Blob: c.storage.URL(storage.Blob), Queue: c.storage.URL(storage.Queue), Table: c.storage.URL(storage.Table)},
			Dir:   filepath.Join(cfg.Data, "storage"),
			State: c.store,
			// Through this server's API, which passes writes to the leader.
			Placement: client.New(e.self.API).WithTransport(e.link.Client().Transport),
			Peers:     e.link.Client(), Storage: c.storage, InContact: c.store.InContact,
			Logger: log.With("part", "storage"),
		})
	}
	if p.sys, err = systemAccount(ctx, c.accts, c.storage); err != nil {
		return nil, err
	}
	p.disks = vms.NewDisks(p.sys.url, p.sys.name, p.sys.key)
	p.disks.ServedBy(func() []string {
		var urls []string
		for _, m := range placement.Members(c.store) {
			urls = append(urls, m.Blob)
		}
		return urls
	})
	p.peers = cluster.NewServer(c.store, e.self, e.link, log.With("part", "cluster"))
	p.peers.Removed = func(ctx context.Context, name string) error { return placement.Unregister(ctx, c.store, name) }
	p.audit = audit.New(c.store, 0, log.With("part", "audit"))
	p.drives = drives.New(c.store, drives.QuotaFunc(func(tenant string, size api.Bytes) error {
		return c.ctl.CheckDiskQuota(tenant, size)
	}), p.disks, log.With("part", "drives"))
	sealKey, err := extensions.ServerKey(cfg.TLSDir, cfg.Data)
	if err != nil {
		return nil, err
	}
	sealer, err := extensions.NewSealer(sealKey)
	if err != nil {
		return nil, err
	}
	c.ctl = fabric.New(fabric.Config{
		Drives:  p.drives,
		Sealer:  sealer,
		Tenants: c.tenants,
		Name:    cfg.Name, UpgradeTimeout: cfg.UpgradeTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval, HeartbeatRate: cfg.HeartbeatRate, HeartbeatTTL: cfg.HeartbeatTTL,
		DownWaveFraction: cfg.DownWaveFraction, DownWaveNodes: cfg.DownWaveNodes, DownWaveRate: cfg.DownWaveRate, DownWaveHalt: cfg.DownWaveHalt,
		ReservedPorts:        reservedPorts(c.addr, e.raft, cfg.StorageDisabled, cfg.BlobPort, cfg.QueuePort, cfg.TablePort),
		AllowPrivilegedPorts: cfg.AllowPrivilegedPorts,
		Logger:               log.With("part", "fabric"), DiskAccess: p.disks.Access, Leader: c.store.IsLeader,
		FetchPackage: func(ctx context.Context, digest string) (io.ReadCloser, error) {
			return p.peers.FetchFromPeers(ctx, "/v1/packages/"+digest)
		},
	}, c.store, pkgs, c.lb)
	p.images = images.New(c.store, p.sys.client(), func(ctx context.Context, digest string) (io.ReadCloser, error) {
		return p.peers.FetchFromPeers(ctx, "/v1/imagefiles/"+digest)
	}, log.With("part", "images"))
	p.vms = vms.New(c.ctl, p.images, p.disks, log.With("part", "vms"))
	p.ledger = metering.NewLedger(c.store)
	p.extensions = extensions.New(c.store, c.ctl)
	p.vpns = vpn.New(c.store, c.ctl, sealer, log.With("part", "vpn"))
	e.auth.ctl.Store(c.ctl)
	e.auth.tokens.Store(c.tenants)
	var st state.Store = c.store
	e.auth.join.st.Store(&st)
	return p, nil
}

// routes is every route the server serves, mounted in one place; each
// has its rule in access.Table, which access.Mux requires and the
// authentication in front enforces. From the outside in:
//
//	/v1/storage/replica/  replication, between this server and the caller, never forwarded
//	/v1/                  the API: forwarded to the leader when this server is not it (cluster),
//	                      audited, then the server's own routes (join, certificates, storage
//	                      placement, metering) and controlapi's
//	GET /metrics          Prometheus
//	/                     the portal
func (c *controller) routes(e *edge, p *parts) (http.Handler, error) {
	log := c.log
	certs := &certificates{creds: e.creds, ctl: c.ctl, log: log.With("part", "pki")}
	own := access.NewMux()
	own.Handle("POST "+joinTokenPath, rotateJoinToken(c.store, e.creds, log.With("part", "pki")))
	own.HandleFunc("POST "+joinPath, certs.join)
	own.HandleFunc("POST "+renewPath, certs.renew)
	placementRoutes := placement.Handler(c.store, log.With("part", "storage"))
	for _, route := range []string{"POST /v1/storage/members", "POST /v1/storage/insync", "GET /v1/storage/config"} {
		own.Handle(route, placementRoutes)
	}
	meteringRoutes := controlapi.Metering(p.ledger, nil, log.With("part", "api"))
	for _, route := range controlapi.MeteringRoutes {
		own.Handle(route, meteringRoutes)
	}
	own.Pass(controlapi.New(controlapi.Config{
		Controller: c.ctl, Accounts: c.accts, Images: p.images, VMs: p.vms, Drives: p.drives, Networks: networks.New(c.store, c.ctl), VPNs: p.vpns, Extensions: p.extensions, Tenants: c.tenants, Audit: p.audit, Ledger: p.ledger,
		Nodes: e.nodes, Portal: e.self.API, Log: log.With("part", "api"),
	}))

	routes := access.NewMux()
	if p.node != nil {
		routes.Handle("/v1/storage/replica/", serversOnly(e.creds, p.node.Handler()))
	}
	routes.Handle("/v1/", p.peers.Handler(p.audit.Middleware(own)))
	metricsHandler, err := c.metricsHandler(p.node)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	routes.Handle("GET "+metrics.Path, metricsHandler)
	// The portal calls this server's API through the whole chain
	// (authentication, access table, forwarding) with the signed-in
	// user's token, so it may do no more than that token.
	routes.Handle("/", portal.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.http.Handler.ServeHTTP(w, r)
	}), portal.Options{Logger: log.With("part", "portal")}))
	return routes, nil
}

// run starts the loops: on every server the storage node and the metering
// reporter; on the leader only, the reconcilers and the meter.
func (c *controller) run(cfg ServerConfig, e *edge, p *parts) {
	log := c.log
	c.runCtx, c.cancel = context.WithCancel(context.Background())
	reconciler := &placement.Reconciler{Store: c.store, Self: cfg.Name, Lease: replicated.Lease,
		Log: log.With("part", "storage"), Probe: probeStorage(e.link)}
	meter := metering.New(metering.Config{Store: c.store, Footprint: c.ctl.Footprint, Logger: log.With("part", "metering")})
	if p.node != nil {
		go p.node.Run(c.runCtx)
	}
	reporter := &metering.Reporter{Server: cfg.Name, Collect: usageCounts(c.lb, c.storage, c.accts),
		Send: metering.Client{HTTP: e.link.Client(), Base: e.self.API}.Send, Logger: log.With("part", "metering")}
	go reporter.Run(c.runCtx)
	go func() {
		cluster.Lead(c.runCtx, c.store, log.With("part", "cluster"), func(ctx context.Context) {
			if err := c.tenants.EnsureDefault(ctx); err != nil && ctx.Err() == nil {
				log.Error("the default tenant was not made", "err", err)
			}
			if err := c.accts.IndexByTenant(ctx); err != nil && ctx.Err() == nil {
				log.Error("storage accounts not indexed by tenant", "err", err)
			}
			go reconciler.Run(ctx)
			go meter.Run(ctx)
			go p.vpns.Run(ctx, vpnRehomeInterval)
			c.ctl.Run(ctx)
		})
		if c.runCtx.Err() == nil {
			c.done <- errors.New("the replicated state stopped")
		}
	}()
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

// vpnRehomeInterval is how often the leader checks that every VPN
// gateway's node is ready, moving the gateways of those that are not.
const vpnRehomeInterval = 2 * time.Second
