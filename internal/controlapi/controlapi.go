// Package controlapi is the controller's REST API: HTTP handlers between the
// wire types of package api and the fabric controller. Its handlers return
// errors; httpapi.WriteError, shared by every API of Weft, makes them
// statuses.
package controlapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/accounts"
	"github.com/weftcloud/weft/internal/audit"
	"github.com/weftcloud/weft/internal/drives"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/metering"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/tenants"
	"github.com/weftcloud/weft/internal/vms"
	"github.com/weftcloud/weft/internal/vpn"
)

// maxJSONBody bounds every JSON request body.
const maxJSONBody = 1 << 20

// Config is what the API serves.
type Config struct {
	Controller *fabric.Controller
	Accounts   *accounts.Store
	Images     *images.Store
	VMs        *vms.Manager
	Drives     *drives.Manager
	Networks   *networks.Manager
	// VPNs, when set, serves the networks' VPN gateways.
	VPNs       *vpn.Manager
	Extensions *extensions.Store
	Tenants    *tenants.Store
	Audit      *audit.Log
	// Ledger, when set, says what tenants' storage accounts hold.
	Ledger *metering.Ledger
	// Nodes is the HTTP client for agents' APIs (logs, exec): with TLS, it
	// presents the server's certificate.
	Nodes *http.Client
	// Portal is the portal's base URL, for sign-in links.
	Portal string
	Log    *slog.Logger
}

type server struct {
	ctl        *fabric.Controller
	accounts   *accounts.Store
	images     *images.Store
	vms        *vms.Manager
	drives     *drives.Manager
	networks   *networks.Manager
	vpns       *vpn.Manager
	extensions *extensions.Store
	tenants    *tenants.Store
	audit      *audit.Log
	ledger     *metering.Ledger // nil: no storage usage in tenants' usage
	portal     string
	log        *slog.Logger
	http       *http.Client // for proxying to node agents
}

// scopedFunc is a handler that acts in one tenant (see scope).
type scopedFunc func(w http.ResponseWriter, r *http.Request, tenant string) error

// New returns the API handler.
func New(cfg Config) http.Handler {
	if cfg.Nodes == nil {
		cfg.Nodes = &http.Client{}
	}
	s := &server{ctl: cfg.Controller, accounts: cfg.Accounts, images: cfg.Images, vms: cfg.VMs, drives: cfg.Drives, networks: cfg.Networks, vpns: cfg.VPNs, extensions: cfg.Extensions, tenants: cfg.Tenants,
		audit: cfg.Audit, ledger: cfg.Ledger, portal: cfg.Portal, log: cfg.Log, http: cfg.Nodes}
	mux := access.NewMux()
	route := func(pattern string, h httpapi.HandlerFunc) { s.mount(mux, pattern, h) }
	// in is a route that acts in one tenant; list, one that may also list
	// every tenant's objects (?tenant=*, the operator's).
	in := func(pattern string, h scopedFunc) {
		route(pattern, func(w http.ResponseWriter, r *http.Request) error {
			tenant, err := s.scope(r, false)
			if err != nil {
				return err
			}
			return h(w, r, tenant)
		})
	}
	list := func(pattern string, h scopedFunc) {
		route(pattern, func(w http.ResponseWriter, r *http.Request) error {
			tenant, err := s.scope(r, true)
			if err != nil {
				return err
			}
			return h(w, r, tenant)
		})
	}
	route("GET /v1/status", s.status)
	route("POST /v1/packages", s.putPackage)
	route("GET /v1/packages/{digest}", s.getPackage)

	in("PUT /v1/services/{name}", s.deploy)
	list("GET /v1/services", s.services)
	in("GET /v1/services/{name}", s.service)
	in("DELETE /v1/services/{name}", s.deleteService)
	in("POST /v1/services/{name}/scale", s.scale)
	in("POST /v1/services/{name}/rollback", s.rollback)
	in("POST /v1/services/{name}/plan", s.plan)

	list("GET /v1/instances", s.instances)
	list("GET /v1/instances/{id}", s.instance)
	list("GET /v1/instances/{id}/logs", s.logs)
	list("POST /v1/instances/{id}/exec", s.exec)
	list("POST /v1/instances/{id}/reimage", s.reimage)

	route("GET /v1/nodes", s.nodes)
	route("GET /v1/nodes/{name}", s.node)
	route("PUT /v1/nodes/{name}", s.registerNode)
	route("POST /v1/nodes/{name}/heartbeat", s.heartbeat)
	route("POST /v1/nodes/{name}/scheduledevents", s.scheduledEventAction)
	route("GET /v1/nodes/{name}/assignments", s.assignments)
	route("GET /v1/nodes/{name}/peers/{instance}", s.peers)
	route("POST /v1/nodes/{name}/drain", s.drain)
	route("POST /v1/nodes/{name}/undrain", s.undrain)
	route("POST /v1/nodes/{name}/revoke", s.revoke)

	list("GET /v1/events", s.events)

	in("POST /v1/storage/accounts", s.createAccount)
	list("GET /v1/storage/accounts", s.listAccounts)
	list("GET /v1/storage/accounts/{name}/keys", s.accountKeys)
	list("POST /v1/storage/accounts/{name}/keys/{key}/regenerate", s.regenerateKey)
	list("DELETE /v1/storage/accounts/{name}", s.deleteAccount)

	route("HEAD /v1/imagefiles/{digest}", s.headImageFile)
	route("GET /v1/imagefiles/{digest}", s.getImageFile)
	route("PUT /v1/imagefiles/{digest}", s.putImageFile)
	route("GET /v1/imagedigests/{digest}", s.imageByDigest)
	in("POST /v1/images", s.createImage)
	list("GET /v1/images", s.listImages)
	in("GET /v1/images/{name}", s.image)
	in("DELETE /v1/images/{name}", s.deleteImage)

	in("POST /v1/vms", s.createVM)
	list("GET /v1/vms", s.listVMs)
	in("GET /v1/vms/{name}", s.vm)
	in("POST /v1/vms/{name}/start", s.startVM)
	in("POST /v1/vms/{name}/stop", s.stopVM)
	in("DELETE /v1/vms/{name}", s.deleteVM)
	in("POST /v1/vms/{name}/exec", s.execVM)
	in("POST /v1/vms/{name}/migrate", s.migrateVM)
	in("POST /v1/vms/{name}/resize", s.resizeVM)
	in("POST /v1/vms/{name}/disks", s.attachDisk)
	in("DELETE /v1/vms/{name}/disks/{disk}", s.detachDisk)
	in("GET /v1/vms/{name}/extensions", s.vmExtensions)
	in("PUT /v1/vms/{name}/extensions/{extension}", s.setVMExtension)
	in("DELETE /v1/vms/{name}/extensions/{extension}", s.removeVMExtension)

	in("POST /v1/drives", s.createDrive)
	list("GET /v1/drives", s.listDrives)
	in("GET /v1/drives/{name}", s.drive)
	in("POST /v1/drives/{name}/snapshots", s.snapshotDrive)
	in("DELETE /v1/drives/{name}", s.deleteDrive)

	in("POST /v1/networks", s.createNetwork)
	list("GET /v1/networks", s.listNetworks)
	in("GET /v1/networks/{name}", s.network)
	in("DELETE /v1/networks/{name}", s.deleteNetwork)
	in("GET /v1/networks/{name}/rules", s.networkRules)
	in("POST /v1/networks/{name}/rules", s.addNetworkRule)
	in("DELETE /v1/networks/{name}/rules/{rule}", s.removeNetworkRule)
	in("POST /v1/networks/{name}/vpn", s.createVPN)
	in("GET /v1/networks/{name}/vpn", s.vpn)
	in("DELETE /v1/networks/{name}/vpn", s.deleteVPN)
	list("GET /v1/vpns", s.listVPNs)

	in("POST /v1/extensions", s.publishExtension)
	list("GET /v1/extensions", s.listExtensions)
	in("GET /v1/extensions/{name}", s.extension)

	s.tenantRoutes(route, list)
	route("/v1/", func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(api.CodeNotFound, "no API route %s %s", r.Method, r.URL.Path)
	})
	return mux
}

// mount mounts h at pattern, its errors rendered by httpapi.WriteError.
func (s *server) mount(mux *access.Mux, pattern string, h httpapi.HandlerFunc) {
	mux.HandleFunc(pattern, httpapi.Handle(s.log, h))
}

// nodeMayFetch refuses a node's request for what no instance assigned to
// it uses: a node sees the packages and images of its own instances only.
// Other callers pass: the access table already admitted them.
func (s *server) nodeMayFetch(r *http.Request, uses func(api.RoleSpec) bool) error {
	p := access.From(r.Context())
	if p.Role != access.Node || s.ctl.AssignedTo(p.Name, uses) {
		return nil
	}
	return api.Errorf(api.CodeNotFound, "node %s runs no instance that uses %s", p.Name, r.URL.Path)
}

func ok(w http.ResponseWriter, v any) error {
	httpapi.WriteJSON(w, http.StatusOK, v)
	return nil
}

// decode reads a JSON body strictly (httpapi.Decode).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return httpapi.Decode(w, r, maxJSONBody, v)
}

func (s *server) status(w http.ResponseWriter, r *http.Request) error {
	return ok(w, s.ctl.Status())
}

func (s *server) putPackage(w http.ResponseWriter, r *http.Request) error {
	pkg, err := s.ctl.PutPackage(r.Context(), r.Body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, pkg)
	return nil
}

func (s *server) getPackage(w http.ResponseWriter, r *http.Request) error {
	digest := r.PathValue("digest")
	if err := s.nodeMayFetch(r, func(role api.RoleSpec) bool { return usesPackage(role, digest) }); err != nil {
		return err
	}
	rc, err := s.ctl.Package(localContext(r), r.PathValue("digest"))
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/gzip")
	_, err = io.Copy(w, rc)
	return err
}

func (s *server) deploy(w http.ResponseWriter, r *http.Request, tenant string) error {
	spec, err := decodeSpec(w, r)
	if err != nil {
		return err
	}
	svc, err := s.ctl.Deploy(r.Context(), tenant, spec)
	if err != nil {
		return err
	}
	return ok(w, svc)
}

// plan answers what deploying the model in the body would change.
func (s *server) plan(w http.ResponseWriter, r *http.Request, tenant string) error {
	spec, err := decodeSpec(w, r)
	if err != nil {
		return err
	}
	p, err := s.ctl.Plan(r.Context(), tenant, spec)
	if err != nil {
		return err
	}
	return ok(w, p)
}

// decodeSpec reads the service model of a route that names its service:
// a model without a name takes the URL's, one with another name is refused.
func decodeSpec(w http.ResponseWriter, r *http.Request) (api.ServiceSpec, error) {
	var spec api.ServiceSpec
	if err := decode(w, r, &spec); err != nil {
		return spec, err
	}
	name := r.PathValue("name")
	if spec.Name == "" {
		spec.Name = name
	}
	if spec.Name != name {
		return spec, api.Errorf(api.CodeInvalid, "name: %q does not match the service in the URL (%q)", spec.Name, name)
	}
	return spec, nil
}

// services reads a page of services from the state itself (a tenant may
// have many; the whole list costs every instance of the cluster).
func (s *server) services(w http.ResponseWriter, r *http.Request, tenant string) error {
	key := func(svc api.Service) string { return tenantKey(svc.Tenant, svc.Name) }
	q, err := pageOf(r)
	if err != nil {
		return err
	}
	if !q.paged {
		return ok(w, nonNil(s.ctl.Services(r.Context(), tenant)))
	}
	page, more := s.ctl.ServicesPage(r.Context(), tenant, q.after, q.limit)
	return writeReadPage(w, r, page, more, key)
}

func (s *server) service(w http.ResponseWriter, r *http.Request, tenant string) error {
	svc, err := s.ctl.Service(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, svc)
}

func (s *server) deleteService(w http.ResponseWriter, r *http.Request, tenant string) error {
	keep := false
	if v := r.URL.Query().Get("keepDrives"); v != "" {
		var err error
		if keep, err = strconv.ParseBool(v); err != nil {
			return api.Errorf(api.CodeInvalid, "keepDrives: %q is not true or false", v)
		}
	}
	svc, err := s.ctl.DeleteService(r.Context(), tenant, r.PathValue("name"), keep)
	if err != nil {
		return err
	}
	return ok(w, svc)
}

func (s *server) scale(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.ScaleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	svc, err := s.ctl.Scale(r.Context(), tenant, r.PathValue("name"), req.Role, req.Instances)
	if err != nil {
		return err
	}
	return ok(w, svc)
}

func (s *server) rollback(w http.ResponseWriter, r *http.Request, tenant string) error {
	svc, err := s.ctl.Rollback(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, svc)
}

func (s *server) instances(w http.ResponseWriter, r *http.Request, tenant string) error {
	return okPage(w, r, s.ctl.Instances(r.Context(), tenant, r.URL.Query().Get("service")), func(in api.Instance) string { return in.ID })
}

// The instance routes name an instance by its ID, unique across tenants:
// the operator reaches any tenant's without naming it.

func (s *server) instance(w http.ResponseWriter, r *http.Request, tenant string) error {
	in, err := s.ctl.Instance(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	return ok(w, in)
}

func (s *server) reimage(w http.ResponseWriter, r *http.Request, tenant string) error {
	in, err := s.ctl.Reimage(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	return ok(w, in)
}

// logs proxies to the agent of the instance's node, which keeps the logs.
func (s *server) logs(w http.ResponseWriter, r *http.Request, tenant string) error {
	q := r.URL.Query()
	q.Del("tenant")
	resp, err := s.toNode(r, tenant, r.PathValue("id"), http.MethodGet, "/logs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	return copyFlushing(w, resp.Body)
}

func (s *server) exec(w http.ResponseWriter, r *http.Request, tenant string) error {
	return s.execIn(w, r, tenant, r.PathValue("id"))
}

// execIn runs a command in a tenant's instance through its node's agent.
func (s *server) execIn(w http.ResponseWriter, r *http.Request, tenant, id string) error {
	var req api.ExecRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Command) == 0 {
		return api.Errorf(api.CodeInvalid, "command: a command to run is required")
	}
	body, _ := json.Marshal(req)
	resp, err := s.toNode(r, tenant, id, http.MethodPost, "/exec", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	_, err = io.Copy(w, resp.Body)
	return err
}

// toNode sends a request about a tenant's instance to the agent of the
// node it runs on.
func (s *server) toNode(r *http.Request, tenant, id, method, suffix string, body io.Reader) (*http.Response, error) {
	in, err := s.ctl.Instance(r.Context(), tenant, id)
	if err != nil {
		return nil, err
	}
	if in.Node == "" {
		return nil, api.Errorf(api.CodeConflict, "instance %s is not placed on a node yet", in.ID)
	}
	node, err := s.ctl.Node(r.Context(), in.Node)
	if err != nil {
		return nil, err
	}
	if node.State == api.NodeDown {
		return nil, api.Errorf(api.CodeUnavailable, "node %s is down: instance %s cannot be reached", node.Name, in.ID)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, node.Address+"/v1/instances/"+in.ID+suffix, body)
	if err != nil {
		return nil, err
	}
	// The agent takes only the servers' calls: the token it registered
	// with (and, under TLS, the servers' certificate).
	req.Header.Set("Authorization", "Bearer "+s.ctl.NodeAPIToken(node.Name))
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, api.Errorf(api.CodeUnavailable, "node %s: %v", node.Name, err)
	}
	return resp, nil
}

// copyFlushing streams src to w, flushing after every read so followers see
// lines as they come.
func copyFlushing(w http.ResponseWriter, src io.Reader) error {
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // the agent went away mid-stream; the status is already sent
		}
	}
}

func (s *server) nodes(w http.ResponseWriter, r *http.Request) error {
	return ok(w, nonNil(s.ctl.Nodes(r.Context())))
}

func (s *server) node(w http.ResponseWriter, r *http.Request) error {
	n, err := s.ctl.Node(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, n)
}

func (s *server) registerNode(w http.ResponseWriter, r *http.Request) error {
	var reg api.NodeRegistration
	if err := decode(w, r, &reg); err != nil {
		return err
	}
	if reg.Name == "" {
		reg.Name = r.PathValue("name")
	}
	if reg.Name != r.PathValue("name") {
		return api.Errorf(api.CodeInvalid, "name: %q does not match the node in the URL", reg.Name)
	}
	n, err := s.ctl.RegisterNode(r.Context(), reg)
	if err != nil {
		return err
	}
	return ok(w, n)
}

func (s *server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	var hb api.Heartbeat
	if err := decode(w, r, &hb); err != nil {
		return err
	}
	reply, err := s.ctl.Heartbeat(r.Context(), r.PathValue("name"), hb)
	if err != nil {
		return err
	}
	return ok(w, reply)
}

// scheduledEventAction takes an instance's acknowledgement of (or request
// for more time for) its scheduled event, which its node's agent forwards.
func (s *server) scheduledEventAction(w http.ResponseWriter, r *http.Request) error {
	var act api.ScheduledEventAction
	if err := decode(w, r, &act); err != nil {
		return err
	}
	ev, err := s.ctl.ScheduledEventAction(r.Context(), r.PathValue("name"), act)
	if err != nil {
		return err
	}
	return ok(w, ev)
}

func (s *server) assignments(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var index uint64
	if v := q.Get("index"); v != "" {
		var err error
		if index, err = strconv.ParseUint(v, 10, 64); err != nil {
			return api.Errorf(api.CodeInvalid, "index: %q is not a number", v)
		}
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		var err error
		if wait, err = time.ParseDuration(v); err != nil {
			return api.Errorf(api.CodeInvalid, "wait: %q is not a duration", v)
		}
	}
	a, err := s.ctl.Assignments(r.Context(), r.PathValue("name"), index, wait)
	if err != nil {
		return err
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(a.Index, 10))
	// Only agents read it, and every node whenever its assignments
	// change: not indented, which took half the encoding.
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
	return nil
}

func (s *server) peers(w http.ResponseWriter, r *http.Request) error {
	peers, err := s.ctl.Peers(r.Context(), r.PathValue("name"), r.PathValue("instance"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(peers)
	return nil
}

func (s *server) drain(w http.ResponseWriter, r *http.Request) error {
	n, err := s.ctl.DrainNode(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, n)
}

func (s *server) undrain(w http.ResponseWriter, r *http.Request) error {
	n, err := s.ctl.UndrainNode(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, n)
}

func (s *server) revoke(w http.ResponseWriter, r *http.Request) error {
	n, err := s.ctl.RevokeNode(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, n)
}

// events answers the kept events after ?since, or with ?follow streams them
// as NDJSON until the client leaves.
func (s *server) events(w http.ResponseWriter, r *http.Request, tenant string) error {
	q := r.URL.Query()
	var since uint64
	if v := q.Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			return api.Errorf(api.CodeInvalid, "since: %q is not a number", v)
		}
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	log := s.ctl.Events()
	// A tenant sees its own objects' events; the operator also sees the
	// nodes' (which belong to no tenant).
	operator := access.From(r.Context()).Role != access.Tenant
	visible := func(evs []api.Event) []api.Event {
		if tenant == api.AllTenants {
			return evs
		}
		return slices.DeleteFunc(evs, func(e api.Event) bool {
			return e.Tenant != tenant && !(operator && e.Tenant == "")
		})
	}
	if !follow {
		evs, _ := log.Since(since)
		return ok(w, nonNil(visible(evs)))
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		evs, changed := log.Since(since)
		if len(evs) > 0 {
			since = evs[len(evs)-1].Seq
		}
		evs = visible(evs)
		for _, e := range evs {
			if err := enc.Encode(e); err != nil {
				return nil
			}
		}
		if flusher != nil && len(evs) > 0 {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}
