package agent

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/httpapi"
)

// The instance metadata service (api.InstanceMetadata): one listener per
// node, on the node's host address, for every instance on the node. Each
// instance gets a random token in its environment (api.EnvMetadataToken),
// kept in its private folder; the token alone says which instance asks, so
// an instance is answered about itself only, and a request without a known
// token gets 401 or 403 and no data. Tokens are never logged.

// metadataURL is what instances find in api.EnvMetadata.
func (a *Agent) metadataURL() string { return "http://" + a.mdln.Addr().String() }

// MetadataAddr is the metadata service's address, http://host:port.
func (a *Agent) MetadataAddr() string { return a.metadataURL() }

// metadataHandler authenticates the caller by its token and answers about
// it. Requests that a proxy forwarded are refused, as the Azure instance
// metadata service does: they may come from someone the instance serves.
func (a *Agent) metadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.MetadataHeader) != "true" {
			httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeInvalid, Message: "the header Metadata: true is required"})
			return
		}
		if r.Header.Get("X-Forwarded-For") != "" {
			httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeInvalid, Message: "the metadata service does not answer forwarded requests"})
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeUnauthorized, Message: "Authorization: Bearer $" + api.EnvMetadataToken + " is required"})
			return
		}
		in := a.instanceByToken(token)
		if in == nil {
			httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeForbidden, Message: "the token names no instance on this node"})
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "GET /metadata/instance":
			md := in.metadata()
			md.Peers = a.peers(r.Context(), in)
			writeMetadata(w, md)
		case "GET /metadata/scheduledevents":
			writeMetadata(w, in.scheduledEvents())
		case "POST /metadata/scheduledevents":
			a.scheduledEventAction(w, r, in)
		default:
			httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeNotFound, Message: "no " + r.Method + " " + r.URL.Path + " here: GET /metadata/instance, GET or POST /metadata/scheduledevents"})
		}
	})
}

// guestMetadataHandler answers the metadata requests that reach the agent
// over instance id's private channel (a VM's guest agent port, see
// driver.GuestServer): the channel says who asks, so the request is
// answered as if it carried id's token, whatever it carries. An ID the
// agent does not run (an instance being torn down) gets 403.
func (a *Agent) guestMetadataHandler(id string) http.Handler {
	h := a.metadataHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		in := a.instances[id]
		a.mu.Unlock()
		if in == nil {
			httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeForbidden, Message: "instance " + id + " does not run on this node"})
			return
		}
		r.Header.Set("Authorization", "Bearer "+in.token)
		h.ServeHTTP(w, r)
	})
}

// writeMetadata answers v as compact JSON, as Azure's metadata service
// does: scripts in instances match its answers as text (grep
// '"type":"Relocate"'), so unlike the API's answers they are not indented.
func writeMetadata(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// instanceByToken finds the instance whose token this is, nil when none
// is. Comparing with every instance's token in constant time tells a
// caller nothing about the tokens it does not hold.
func (a *Agent) instanceByToken(token string) *instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	var found *instance
	for _, in := range a.instances {
		if subtle.ConstantTimeCompare([]byte(in.token), []byte(token)) == 1 {
			found = in
		}
	}
	return found
}

// peers are in's peers as of its assignment's PeersVersion: read from
// the controller when the version moved since they were last read, only
// when the instance asks for them. When the controller cannot be asked,
// the instance gets those last read, or none.
func (a *Agent) peers(ctx context.Context, in *instance) []api.Peer {
	in.mu.Lock()
	version, have, cached := in.asg.PeersVersion, in.peersVersion, in.peers
	in.mu.Unlock()
	if cached != nil && have == version {
		return cached
	}
	peers, err := a.ctl.Peers(ctx, a.cfg.Name, in.id)
	if err != nil {
		a.log.Warn("peers not read from the controller", "instance", in.id, "err", err)
		if cached == nil {
			return []api.Peer{}
		}
		return cached
	}
	in.mu.Lock()
	in.peers, in.peersVersion = peers, version
	in.mu.Unlock()
	return peers
}

// metadata is what the instance learns about itself (its peers apart:
// Agent.peers): its assignment as
// the controller last sent it, with its ports on this node.
func (in *instance) metadata() api.InstanceMetadata {
	in.mu.Lock()
	defer in.mu.Unlock()
	inst, role := in.asg.Instance, in.asg.Role
	md := api.InstanceMetadata{
		ID: in.id, Tenant: inst.Tenant, Service: inst.Service, Role: inst.Role, Node: in.a.cfg.Name,
		FaultDomain: in.a.cfg.FaultDomain, UpdateDomain: inst.UpdateDomain, Version: inst.Version,
		Endpoints: []api.MetadataEndpoint{}, Peers: []api.Peer{}, Settings: maps.Clone(role.Settings),
	}
	if md.Settings == nil {
		md.Settings = map[string]string{}
	}
	for _, ep := range role.Endpoints {
		e := api.MetadataEndpoint{Name: ep.Name, Protocol: ep.Protocol, Port: in.ports[ep.Name]}
		if role.Kind == api.KindWeb || role.Kind == api.KindVM {
			e.Public = ep.Port
		}
		md.Endpoints = append(md.Endpoints, e)
	}
	return md
}

// scheduledEvents is the controller's event for the instance, if any, and
// the agent's own news of changed live settings.
func (in *instance) scheduledEvents() api.ScheduledEvents {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := api.ScheduledEvents{Events: []api.ScheduledEvent{}}
	if ev := in.asg.Instance.Scheduled; ev != nil {
		out.Events = append(out.Events, *ev)
	}
	if in.settingsEvent != nil {
		out.Events = append(out.Events, *in.settingsEvent)
	}
	data, _ := json.Marshal(out.Events)
	h := fnv.New64a()
	h.Write(data)
	out.Incarnation = h.Sum64()
	return out
}

// scheduledEventAction takes the instance's answer to one of its events:
// the agent's own settings event is acknowledged here, the controller's
// are forwarded to it, naming the instance the token said.
func (a *Agent) scheduledEventAction(w http.ResponseWriter, r *http.Request, in *instance) {
	var act api.ScheduledEventAction
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&act); err != nil || act.EventID == "" {
		httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeInvalid, Message: `body: {"eventId": "...", "action": "acknowledge" or "extend"} is required`})
		return
	}
	if act.Action == "" {
		act.Action = api.ActionAcknowledge
	}
	in.mu.Lock()
	own := in.settingsEvent
	if own != nil && own.ID == act.EventID && act.Action == api.ActionAcknowledge {
		in.settingsEvent = nil
	}
	in.mu.Unlock()
	if own != nil && own.ID == act.EventID {
		if act.Action != api.ActionAcknowledge {
			httpapi.WriteError(a.log, w, r, &api.Error{Code: api.CodeConflict, Message: "a settings event can only be acknowledged"})
			return
		}
		writeMetadata(w, *own)
		return
	}
	act.Instance = in.id
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	ev, err := a.ctl.ScheduledEventAction(ctx, a.cfg.Name, act)
	if err != nil {
		var apiErr *api.Error
		if !errors.As(err, &apiErr) {
			apiErr = api.Errorf(api.CodeUnavailable, "the controller cannot be reached: %v", err)
		}
		httpapi.WriteError(a.log, w, r, apiErr)
		return
	}
	in.mu.Lock()
	if cur := in.asg.Instance.Scheduled; cur != nil && cur.ID == ev.ID {
		in.asg.Instance.Scheduled = &ev // shown at once, before the assignment comes back
	}
	in.mu.Unlock()
	writeMetadata(w, ev)
}

// settingsChanged notes, for a role with live settings, that the
// assignment brought new settings: the instance finds an event at
// /metadata/scheduledevents and the values at /metadata/instance.
// in.mu must be held.
func (in *instance) settingsChanged(old, asg api.Assignment) {
	if !asg.Role.LiveSettings || maps.Equal(old.Role.Settings, asg.Role.Settings) {
		return
	}
	in.settingsEvent = &api.ScheduledEvent{
		ID:   fmt.Sprintf("settings-%d", asg.Instance.Version),
		Type: api.EventSettings, Instance: in.id, Status: api.EventStarted, NotBefore: time.Now().UTC(),
	}
	keys := slices.Sorted(maps.Keys(asg.Role.Settings))
	in.a.log.Info("live settings changed", "instance", in.id, "version", asg.Instance.Version, "settings", keys)
}

// onStop runs the role's onStop command inside the instance before it is
// stopped, for at most grace; its failure is reported, and the stop goes on.
func (in *instance) onStop(ctx context.Context, cmd []string, grace time.Duration) {
	ex, ok := in.drv.(driver.Execer)
	if !ok {
		in.a.event(in, "instance.onstop", "warn", fmt.Sprintf("instance %s: the %s runtime cannot run onStop", in.id, in.drv.Name()))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	var out cappedBuffer
	start := time.Now()
	code, err := ex.Exec(ctx, in.id, cmd, &out, &out)
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err != nil:
		in.a.event(in, "instance.onstop", "warn", fmt.Sprintf("instance %s: onStop failed after %s: %v", in.id, took, err))
	case code != 0:
		in.a.event(in, "instance.onstop", "warn", fmt.Sprintf("instance %s: onStop exited with code %d after %s", in.id, code, took))
	default:
		in.a.event(in, "instance.onstop", "info", fmt.Sprintf("instance %s: onStop ran in %s", in.id, took))
	}
}
