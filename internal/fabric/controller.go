// Package fabric is the fabric controller: it keeps the desired state of
// services, places their instances on nodes, tracks node liveness, heals what
// fails, rolls upgrades one update domain at a time and drains nodes.
//
// Every decision is level-triggered: one reconcile pass reads the whole state,
// compares desired with actual, and writes one batch. A pass runs whenever the
// store changes, when a node's heartbeats stop for its TTL and when one of its
// own timers ends (passgate.go), so a restarted controller simply carries on
// from what the store says.
package fabric

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/buildinfo"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/lb"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/tenants"
	"github.com/weftcloud/weft/internal/untar"
)

// Balancer is the load balancer the controller feeds: the full set of public
// endpoints on every change, and a drain before an instance stops.
type Balancer interface {
	Update(endpoints []lb.Endpoint) error
	Drain(ctx context.Context, backendID string) error
}

// SlotDrives keeps the drives of roles' instance slots: internal/drives.
type SlotDrives interface {
	// EnsureSlot makes the slot's drive (api.SlotDriveName) of size bytes
	// under the tenant's disk quota, unless it exists, and says whether it
	// made it.
	EnsureSlot(ctx context.Context, tenant string, slot api.DriveSlot, size api.Bytes) (bool, error)
	// Get returns one of the tenant's drives, an api.CodeNotFound error
	// when it has none of that name.
	Get(tenant, name string) (api.Drive, error)
	// Delete deletes one of the tenant's drives.
	Delete(ctx context.Context, tenant, name string) error
	// Access grants a node access to one of the tenant's drives.
	Access(tenant, name string) (api.DiskAccess, error)
	// DeleteService deletes the drives made for a service's slots.
	DeleteService(ctx context.Context, tenant, service string) error
}

// Config tunes the controller; zero values take the defaults.
type Config struct {
	Name string // this controller's name
	// HeartbeatInterval is how often the nodes are told to report while
	// the fleet is small (default 500ms); HeartbeatRate is the most
	// heartbeats a second the controller asks of the whole fleet (default
	// 1000): past HeartbeatRate × HeartbeatInterval nodes, the interval
	// grows with the fleet (liveness.go).
	HeartbeatInterval time.Duration
	HeartbeatRate     float64
	// HeartbeatTTL: a node silent this long is down (default 2s); at
	// least three of the intervals the node was told.
	HeartbeatTTL   time.Duration
	UpgradeTimeout time.Duration // an upgraded instance not healthy this long after it was created halts the upgrade (default 60s)
	DrainTimeout   time.Duration // the longest an instance is drained from the LB before it is stopped anyway (default 30s)
	// The node-down wave guard (nodewave.go): in a fleet of more than
	// DownWaveNodes ready nodes, when more than DownWaveFraction of them
	// (default 0.25) are silent past their TTL in the same pass, the
	// controller declares them down at most DownWaveRate a second
	// (default 2), longest silent first, and when DownWaveHalt of them or
	// more (default 0.9) are silent it declares none down. DownWaveNodes
	// defaults to 50; a DownWaveFraction of 1 or more turns the guard off.
	DownWaveFraction float64
	DownWaveNodes    int
	DownWaveRate     float64
	DownWaveHalt     float64
	// Tick is how often the controller checks whether a reconcile pass is
	// due (default 200ms); a pass also starts on every write. TimerTick is
	// the longest it goes without a pass while nothing is written, no
	// node's silence crosses a limit and none of the pass's timers ends
	// (default 10s), for a timer no step tells pass.wakeAt about
	// (passgate.go).
	Tick      time.Duration
	TimerTick time.Duration
	Logger    *slog.Logger
	Clock     func() time.Time
	// DiskAccess grants a node access to one disk of a persistent instance
	// it is assigned (a SAS for that page blob); nil when there is no
	// storage service, and persistent instances cannot start.
	DiskAccess func(d api.DiskSpec) (api.DiskAccess, error)
	// Drives keeps the drives of roles' instance slots (RoleSpec.Drives);
	// nil when there is no storage service, and such roles are refused.
	Drives SlotDrives
	// Leader reports whether this controller leads its cluster (Status);
	// nil means it is the only one.
	Leader func() bool
	// FetchPackage gets a package from the other servers of the cluster;
	// nil for a single server.
	FetchPackage func(ctx context.Context, digest string) (io.ReadCloser, error)
	// ReservedPorts are the ports the controller itself listens on (its
	// API, Raft, storage), each with what uses it: a deploy that would
	// publish an endpoint on one is refused.
	ReservedPorts map[int]string
	// AllowPrivilegedPorts lets services publish endpoints on ports below
	// 1024; without it such a deploy is refused, so that a model cannot
	// take a system service's port on the controller's host.
	AllowPrivilegedPorts bool
	// Tenants holds the tenants, their quotas and their ports; nil: every
	// tenant is known and has no quota (tests of the fabric alone).
	Tenants *tenants.Store
	// TenantPorts is where ports are picked for endpoints that ask for
	// port 0 when their tenant has no ports of its own (default
	// DefaultTenantPorts).
	TenantPorts api.PortRange
	// Sealer seals the protected settings of roles' extensions at deploy
	// and opens them for the nodes' assignments; nil refuses protected
	// settings.
	Sealer *extensions.Sealer
	// NetworkRuntimes are the runtimes whose instances the node agents put
	// on a virtual network; a role of another runtime that names a network
	// is refused at deploy, rather than given an address nothing answers
	// on. Default: every runtime (docs/networks.md).
	NetworkRuntimes []string
}

// DefaultTenantPorts is Config.TenantPorts's default.
var DefaultTenantPorts = api.PortRange{From: 30000, To: 32767}

// The defaults of Config, which weft server's flags show.
const (
	DefaultHeartbeatInterval = 500 * time.Millisecond
	DefaultHeartbeatRate     = 1000
	DefaultHeartbeatTTL      = 2 * time.Second
	DefaultUpgradeTimeout    = 60 * time.Second
	// The node-down wave guard's (nodewave.go says why these).
	DefaultDownWaveFraction = 0.25
	DefaultDownWaveNodes    = 50
	DefaultDownWaveRate     = 2
	DefaultDownWaveHalt     = 0.9
)

func (c *Config) setDefaults() {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.HeartbeatRate <= 0 {
		c.HeartbeatRate = DefaultHeartbeatRate
	}
	if c.HeartbeatTTL <= 0 {
		c.HeartbeatTTL = DefaultHeartbeatTTL
	}
	unsetTo(&c.DownWaveFraction, DefaultDownWaveFraction)
	unsetTo(&c.DownWaveNodes, DefaultDownWaveNodes)
	unsetTo(&c.DownWaveRate, DefaultDownWaveRate)
	unsetTo(&c.DownWaveHalt, DefaultDownWaveHalt)
	if c.UpgradeTimeout <= 0 {
		c.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.TenantPorts.From == 0 {
		c.TenantPorts = DefaultTenantPorts
	}
	if c.Tick <= 0 {
		c.Tick = 200 * time.Millisecond
	}
	if c.TimerTick <= 0 {
		c.TimerTick = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if len(c.NetworkRuntimes) == 0 {
		c.NetworkRuntimes = []string{api.RuntimeContainer, api.RuntimeProcess, api.RuntimeVM}
	}
}

// unsetTo sets *v to def when it is zero or less: not set.
func unsetTo[T int | float64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Controller is the fabric controller.
type Controller struct {
	cfg      Config
	store    state.Store
	packages *pkgstore.Store
	events   *EventLog
	lb       Balancer // nil: no public endpoints (tests of the fabric alone)
	log      *slog.Logger

	// mu serialises the read-modify-writes of the store of heartbeats,
	// passes' writes and the API calls other than the writes of
	// services, which check what they read instead (optimistic.go).
	mu sync.Mutex
	// svcWrites is held shared by the API's writes of services, which
	// take no mu (optimistic.go), while they write, and alone by a pass
	// that runs again under mu after a conflict, so that none of them
	// comes between what it reads and what it writes. Order: mu first.
	svcWrites sync.RWMutex

	seenMu sync.Mutex
	seen   map[string]nodeSeen // node -> its heartbeats, in memory only (liveness.go)

	assignViews assignViews // what the nodes' blocking queries answer from

	// Heartbeats waiting to be taken, and whether a caller is taking
	// them (Heartbeat).
	hbMu     sync.Mutex
	hbQueue  []*heartbeatReq
	hbTaking bool
	// The records as last decoded (decoded.go): shared, read only.
	instCache decoded[instanceRecord]
	nodeCache decoded[nodeRecord]
	svcCache  decoded[serviceRecord]

	drainMu  sync.Mutex
	draining map[string]bool // instances with a drain under way

	lbMu   sync.Mutex
	lbLast []lb.Endpoint

	kick chan struct{}
	// wake is the wake time of the last pass written (pass.wakeAt), for
	// the Run loop's gate; read and written by the goroutine that runs
	// passes only.
	wake time.Time
	// wave is the node-down wave guard as the last pass written left it
	// (nodewave.go); read and written by the goroutine that runs passes
	// only.
	wave waveGuard
	// declared is when the last passes written declared each node down,
	// for a TTL (nodewave.go); read and written like wave.
	declared map[string]time.Time

	figures *figures
}

// New returns a controller over store. The balancer may be nil.
func New(cfg Config, store state.Store, packages *pkgstore.Store, balancer Balancer) *Controller {
	cfg.setDefaults()
	return &Controller{
		cfg:      cfg,
		store:    store,
		packages: packages,
		events:   NewEventLog(1000, cfg.Logger),
		lb:       balancer,
		log:      cfg.Logger,
		seen:     map[string]nodeSeen{},
		draining: map[string]bool{},
		kick:     make(chan struct{}, 1),
		figures:  newFigures(),
	}
}

// Events is the controller's event log.
func (c *Controller) Events() *EventLog { return c.events }

// Run reconciles until ctx ends, then returns ctx's error. In a cluster
// only the leader runs it; RunLB runs on every server.
func (c *Controller) Run(ctx context.Context) error {
	// Nodes get a full TTL from now: a controller that just started (or
	// just became leader) has not heard anyone yet and must not declare
	// healthy nodes dead.
	if err := c.migrateKeys(ctx); err != nil {
		return err
	}
	now := c.cfg.Clock()
	nodes := list[nodeRecord](c.store, state.KindNodes, "")
	_, ttl := c.heartbeatTiming(len(nodes))
	c.seenMu.Lock()
	for _, n := range nodes {
		c.seen[n.Name] = nodeSeen{at: now, ttl: ttl}
	}
	c.seenMu.Unlock()

	ticker := time.NewTicker(c.cfg.Tick)
	defer ticker.Stop()
	changed := make(chan uint64, 1)
	go func() {
		var idx uint64
		for {
			next, err := c.store.Wait(ctx, idx)
			if err != nil {
				return
			}
			idx = next
			select {
			case changed <- idx:
			default:
			}
		}
	}()
	var gate passGate
	for {
		if err := c.tick(ctx, &gate); err != nil && ctx.Err() == nil {
			c.log.Error("reconcile failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		case <-changed:
		case <-c.kick:
			gate.asked = true
		}
	}
}

// poke asks for a reconcile pass soon.
func (c *Controller) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Controller) now() time.Time { return c.cfg.Clock().UTC() }

// Status describes this controller.
func (c *Controller) Status() api.Status {
	leader := c.cfg.Leader == nil || c.cfg.Leader()
	return api.Status{Version: buildinfo.Version, Leader: leader, Name: c.cfg.Name, Index: c.store.Index()}
}

// Package returns a stored package's bytes (agents fetch packages through it).
func (c *Controller) Package(ctx context.Context, digest string) (io.ReadCloser, error) {
	rc, _, err := c.packages.Open(digest)
	if err == pkgstore.ErrNotFound && c.fetchPackage(ctx, digest) == nil {
		rc, _, err = c.packages.Open(digest)
	}
	if err != nil {
		return nil, mapPackageErr(err)
	}
	return rc, nil
}

// PutPackage stores an uploaded package. One a node would refuse to unpack
// (pkgarchive.Check) is refused with CodeInvalid naming the entry, or
// CodeTooLarge, and not stored.
func (c *Controller) PutPackage(ctx context.Context, r io.Reader) (api.Package, error) {
	digest, size, err := c.packages.Put(r, checkPackage)
	if err != nil {
		return api.Package{}, mapPackageErr(err)
	}
	return api.Package{Digest: digest, Size: size}, nil
}

// checkPackage refuses a package a node would not unpack with its default
// limit for one archive.
func checkPackage(r io.Reader) error {
	err := pkgarchive.Check(r, untar.DefaultMaxBytes)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pkgarchive.ErrTooLarge):
		return api.Errorf(api.CodeTooLarge, "%v", err)
	}
	return api.Errorf(api.CodeInvalid, "%v", err)
}

func mapPackageErr(err error) error {
	switch {
	case err == pkgstore.ErrNotFound:
		return api.Errorf(api.CodeNotFound, "package not found")
	case err == pkgstore.ErrBadDigest:
		return api.Errorf(api.CodeInvalid, "%v", err)
	case err == pkgstore.ErrTooLarge:
		return api.Errorf(api.CodeTooLarge, "%v", err)
	}
	return err
}

// apply writes a batch, doing nothing for an empty one.
func (c *Controller) apply(ctx context.Context, ops []state.Op) error {
	if len(ops) == 0 {
		return nil
	}
	_, err := c.store.Apply(ctx, ops)
	return err
}
