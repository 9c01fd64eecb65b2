package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/servicemodel"
)

// The tenant's pages of compute: the dashboard, VMs, services and their
// instances.

type dashboardView struct {
	Services  []api.Service
	VMs       []api.VM
	Health    map[string]int // instance health -> count
	Instances int
	Tenant    *Tenant // nil: not available
	Usage     *monthUsage
}

// monthUsage is this month's usage, summed by meter.
type monthUsage struct {
	Month  string
	Meters []meterTotal
	Bill   *Bill
}

type meterTotal struct {
	Meter    string
	Quantity float64
	Unit     string
}

func (p *portal) dashboard(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	v := dashboardView{Health: map[string]int{}}
	var err error
	if v.Services, err = s.api.Services(ctx); err != nil {
		return err
	}
	v.Services = withoutVMs(v.Services)
	if v.VMs, err = s.api.VMs(ctx); err != nil {
		return err
	}
	insts, err := s.api.Instances(ctx, "")
	if err != nil {
		return err
	}
	for _, in := range insts {
		v.Health[in.Health]++
	}
	v.Instances = len(insts)
	if s.Who.Tenant != "" {
		if t, err := tenant(ctx, s.api, s.Who.Tenant); err == nil {
			v.Tenant = &t
		}
		v.Usage = monthTotals(ctx, s, s.Who.Tenant)
	}
	p.render(w, r, http.StatusOK, "dashboard", s, v)
	return nil
}

// monthTotals is a tenant's usage this month, or nil when the server does
// not meter.
func monthTotals(ctx context.Context, s *session, tenantName string) *monthUsage {
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	recs, err := usage(ctx, s.api, tenantName, month)
	if err != nil {
		return nil
	}
	u := &monthUsage{Month: month.Format("2006-01")}
	idx := map[string]int{}
	for _, rec := range recs {
		i, ok := idx[rec.Meter]
		if !ok {
			i = len(u.Meters)
			idx[rec.Meter] = i
			u.Meters = append(u.Meters, meterTotal{Meter: rec.Meter, Unit: rec.Unit})
		}
		u.Meters[i].Quantity += rec.Quantity
	}
	if b, err := bill(ctx, s.api, tenantName, month); err == nil {
		u.Bill = &b
	}
	return u
}

// withoutVMs drops the services that are persistent VMs: the VM pages
// show those.
func withoutVMs(list []api.Service) []api.Service {
	out := list[:0:0]
	for _, svc := range list {
		if !svc.Spec.IsVM() {
			out = append(out, svc)
		}
	}
	return out
}

type vmsView struct {
	VMs    []api.VM
	Images []api.Image
}

func (p *portal) vms(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := s.api.VMs(r.Context())
	if err != nil {
		return err
	}
	imgs, err := s.api.Images(r.Context())
	if err != nil {
		return err
	}
	var vmImages []api.Image
	for _, img := range imgs {
		if img.Type == api.ImageVM {
			vmImages = append(vmImages, img)
		}
	}
	p.render(w, r, http.StatusOK, "vms", s, vmsView{VMs: list, Images: vmImages})
	return nil
}

func (p *portal) createVM(w http.ResponseWriter, r *http.Request, s *session) error {
	req := api.CreateVM{Name: strings.TrimSpace(r.PostFormValue("name")), Image: r.PostFormValue("image")}
	var err error
	if req.CPUs, err = strconv.ParseFloat(r.PostFormValue("cpus"), 64); err != nil {
		return api.Errorf(api.CodeInvalid, "cpus: %q is not a number", r.PostFormValue("cpus"))
	}
	if req.Memory, err = api.ParseBytes(r.PostFormValue("memory")); err != nil {
		return api.Errorf(api.CodeInvalid, "memory: %v", err)
	}
	if _, err := s.api.CreateVM(r.Context(), req); err != nil {
		return err
	}
	http.Redirect(w, r, "/vms/"+pathEscape(req.Name), http.StatusSeeOther)
	return nil
}

type vmView struct {
	VM    api.VM
	Nodes []api.Node // for migrate; empty when the token may not list them
}

func (p *portal) vm(w http.ResponseWriter, r *http.Request, s *session) error {
	vm, err := s.api.VM(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	v := vmView{VM: vm}
	if s.Operator() {
		v.Nodes, _ = s.api.Nodes(r.Context())
	}
	p.render(w, r, http.StatusOK, "vm", s, v)
	return nil
}

func (v vmView) PageTitle() string { return "VM " + v.VM.Name }

// restartWait bounds how long a restart waits for the VM to stop.
const restartWait = 2 * time.Minute

func (p *portal) vmAction(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, name := r.Context(), r.PathValue("name")
	var err error
	switch r.PathValue("action") {
	case "start":
		_, err = s.api.StartVM(ctx, name)
	case "stop":
		_, err = s.api.StopVM(ctx, name)
	case "restart":
		err = p.restartVM(ctx, s, name)
	case "migrate":
		_, err = s.api.MigrateVM(ctx, name, r.PostFormValue("to"))
	case "delete":
		if err = s.api.DeleteVM(ctx, name); err == nil {
			http.Redirect(w, r, "/vms", http.StatusSeeOther)
			return nil
		}
	default:
		return api.Errorf(api.CodeNotFound, "no VM action %q", r.PathValue("action"))
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/vms/"+pathEscape(name), http.StatusSeeOther)
	return nil
}

// restartVM stops the VM, waits until it has stopped, and starts it: the
// API has no restart of its own.
func (p *portal) restartVM(ctx context.Context, s *session, name string) error {
	if _, err := s.api.StopVM(ctx, name); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, restartWait)
	defer cancel()
	for {
		vm, err := s.api.VM(ctx, name)
		if err != nil {
			return err
		}
		if vm.State == api.StateStopped {
			break
		}
		select {
		case <-ctx.Done():
			return api.Errorf(api.CodeUnavailable, "VM %s did not stop within %s: it stays stopping; start it when it has stopped", name, restartWait)
		case <-time.After(250 * time.Millisecond):
		}
	}
	_, err := s.api.StartVM(ctx, name)
	return err
}

func (p *portal) services(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := s.api.Services(r.Context())
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusOK, "services", s, withoutVMs(list))
	return nil
}

// maxModel bounds an uploaded service model.
const maxModel = 1 << 20

// deploy deploys an uploaded YAML service model. Process roles must name
// a package uploaded before (sha256:...): the portal does not pack folders.
func (p *portal) deploy(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.form == nil {
		return api.Errorf(api.CodeInvalid, "deploy: send the model as a file in a multipart form")
	}
	part, err := s.form.NextPart()
	if err != nil || part.FormName() != "model" {
		return api.Errorf(api.CodeInvalid, "deploy: choose a service model file (YAML)")
	}
	data, err := io.ReadAll(io.LimitReader(part, maxModel+1))
	if err != nil {
		return fmt.Errorf("portal: read the model: %w", err)
	}
	if len(data) > maxModel {
		return api.Errorf(api.CodeInvalid, "deploy: the model is larger than %d bytes", maxModel)
	}
	spec, err := servicemodel.Parse(data)
	if err != nil {
		return err
	}
	svc, err := s.api.Deploy(r.Context(), spec)
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/services/"+pathEscape(svc.Name), http.StatusSeeOther)
	return nil
}

type serviceView struct {
	Service   api.Service
	Instances []api.Instance
	Events    []api.Event // nil: the token may not read events
}

func (v serviceView) PageTitle() string { return "Service " + v.Service.Name }

// maxEvents is how many of the latest events a page shows.
const maxEvents = 50

func (p *portal) service(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	svc, err := s.api.Service(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	insts, err := s.api.Instances(ctx, svc.Name)
	if err != nil {
		return err
	}
	v := serviceView{Service: svc, Instances: insts}
	v.Events = latestEvents(ctx, s, func(e api.Event) bool { return e.Service == svc.Name })
	p.render(w, r, http.StatusOK, "service", s, v)
	return nil
}

// latestEvents is the newest maxEvents events that keep matches, newest
// first; nil when the token may not read the events.
func latestEvents(ctx context.Context, s *session, keep func(api.Event) bool) []api.Event {
	all, err := s.api.Events(ctx, 0)
	if err != nil {
		return nil
	}
	out := []api.Event{}
	for i := len(all) - 1; i >= 0 && len(out) < maxEvents; i-- {
		if keep(all[i]) {
			out = append(out, all[i])
		}
	}
	return out
}

func (p *portal) serviceAction(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, name := r.Context(), r.PathValue("name")
	var err error
	switch r.PathValue("action") {
	case "scale":
		n, perr := strconv.Atoi(r.PostFormValue("instances"))
		if perr != nil || n < 0 {
			return api.Errorf(api.CodeInvalid, "instances: %q is not a count", r.PostFormValue("instances"))
		}
		_, err = s.api.Scale(ctx, name, r.PostFormValue("role"), n)
	case "rollback":
		_, err = s.api.Rollback(ctx, name)
	case "delete":
		if _, err = s.api.DeleteService(ctx, name); err == nil {
			http.Redirect(w, r, "/services", http.StatusSeeOther)
			return nil
		}
	default:
		return api.Errorf(api.CodeNotFound, "no service action %q", r.PathValue("action"))
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/services/"+pathEscape(name), http.StatusSeeOther)
	return nil
}

type instanceView struct {
	Instance api.Instance
	Logs     string
	LogsErr  string
	Events   []api.Event
}

func (v instanceView) PageTitle() string { return "Instance " + v.Instance.ID }

// logTail is how many lines of an instance's log its page shows.
const logTail = 200

func (p *portal) instance(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	in, err := s.api.Instance(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := instanceView{Instance: in}
	if v.Logs, err = readLogs(ctx, s, in.ID); err != nil {
		var e *api.Error
		if !errors.As(err, &e) {
			return err
		}
		v.LogsErr = e.Message
	}
	v.Events = latestEvents(ctx, s, func(e api.Event) bool { return e.Instance == in.ID })
	p.render(w, r, http.StatusOK, "instance", s, v)
	return nil
}

// maxLogBytes bounds the log shown on a page.
const maxLogBytes = 256 << 10

func readLogs(ctx context.Context, s *session, id string) (string, error) {
	rc, err := s.api.Logs(ctx, id, logTail, false)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxLogBytes))
	return string(data), err
}
