package placement

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// maxBody bounds every request body; the largest is a Member.
const maxBody = 64 << 10

// Status is what GET /v1/storage/config answers (Config.Epoch 0: no
// primary chosen yet).
type Status = api.StoragePlacement

// InSyncChange is the body of POST /v1/storage/insync.
type InSyncChange struct {
	Epoch uint64 `json:"epoch"`
	Name  string `json:"name"`
	Op    string `json:"op"` // "add", "drop" or "restart"
}

// Handler serves the storage configuration:
//
//	POST /v1/storage/members  a Member: Register
//	POST /v1/storage/insync   an InSyncChange: Add or Drop
//	GET  /v1/storage/config   the Status
//
// It applies writes to st itself: mount it behind a handler that forwards
// writes to the leader. A body that is not the expected JSON, or an
// unknown op, is answered 400; a stale epoch 409; errors are api.ErrorBody
// on one line.
func Handler(st state.Store) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				writeError(w, err)
			}
		})
	}
	route("POST /v1/storage/members", func(w http.ResponseWriter, r *http.Request) error {
		var m Member
		if err := decode(w, r, &m); err != nil {
			return err
		}
		if err := Register(r.Context(), st, m); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct{}{})
		return nil
	})
	route("POST /v1/storage/insync", func(w http.ResponseWriter, r *http.Request) error {
		var c InSyncChange
		if err := decode(w, r, &c); err != nil {
			return err
		}
		var err error
		switch c.Op {
		case "add":
			err = Add(r.Context(), st, c.Epoch, c.Name)
		case "drop":
			err = Drop(r.Context(), st, c.Epoch, c.Name)
		case "restart":
			err = Restart(r.Context(), st, c.Epoch, c.Name)
		default:
			err = api.Errorf(api.CodeInvalid, "op: %q is not add, drop or restart", c.Op)
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct{}{})
		return nil
	})
	route("GET /v1/storage/config", func(w http.ResponseWriter, r *http.Request) error {
		cfg, _, _ := Current(st)
		members := Members(st)
		if members == nil {
			members = []Member{}
		}
		writeJSON(w, http.StatusOK, Status{Config: cfg, Members: members})
		return nil
	})
	return mux
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// refused, as the controller's API does.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return api.Errorf(api.CodeInvalid, "request body: %v", err)
	}
	if dec.More() {
		return api.Errorf(api.CodeInvalid, "request body: more than one JSON value")
	}
	return nil
}

// writeError is where this API's errors become statuses: ErrStaleEpoch is
// 409, an *api.Error its own status, anything else 500. The message is
// made one line.
func writeError(w http.ResponseWriter, err error) {
	var e *api.Error
	switch {
	case errors.Is(err, ErrStaleEpoch):
		e = &api.Error{Code: api.CodeConflict, Message: err.Error()}
	case errors.As(err, &e):
	default:
		e = &api.Error{Code: api.CodeInternal, Message: err.Error()}
	}
	body := api.ErrorBody{Error: api.Error{Code: e.Code, Message: strings.Join(strings.Fields(e.Message), " ")}}
	writeJSON(w, api.HTTPStatus(e), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Client calls Handler's routes on a server.
type Client struct {
	// HTTP sends the requests; nil is http.DefaultClient. Between servers
	// with TLS it is one that presents this server's certificate.
	HTTP *http.Client
	// Base is a server's API base URL, e.g. https://10.0.0.1:7070; any
	// server will do, followers forward writes to the leader.
	Base string
}

// Register registers m (see Register).
func (c Client) Register(ctx context.Context, m Member) error {
	return c.call(ctx, http.MethodPost, "/v1/storage/members", m, nil)
}

// Add adds name to the in-sync set of epoch (see Add). A stale epoch
// returns an error that matches ErrStaleEpoch; other refusals are *api.Error.
func (c Client) Add(ctx context.Context, epoch uint64, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/storage/insync", InSyncChange{Epoch: epoch, Name: name, Op: "add"}, nil)
}

// Drop removes name from the in-sync set of epoch (see Drop). A stale
// epoch returns an error that matches ErrStaleEpoch; other refusals are
// *api.Error.
func (c Client) Drop(ctx context.Context, epoch uint64, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/storage/insync", InSyncChange{Epoch: epoch, Name: name, Op: "drop"}, nil)
}

// Restart starts a new epoch with name, the primary of epoch, alone in
// its in-sync set (see Restart).
func (c Client) Restart(ctx context.Context, epoch uint64, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/storage/insync", InSyncChange{Epoch: epoch, Name: name, Op: "restart"}, nil)
}

// Status returns the configuration and the members, read consistently
// from the leader.
func (c Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.call(ctx, http.MethodGet, "/v1/storage/config", nil, &s)
	return s, err
}

// call sends one JSON request and decodes a 200 answer into out. Other
// answers become a *wireError: the server's *api.Error (or one made from
// the status, for answers that are not ours, e.g. a proxy's), which also
// matches ErrStaleEpoch for 409.
func (c Client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&eb)
		e := &wireError{err: &eb.Error}
		if eb.Error.Code == "" {
			e.err = &api.Error{Code: api.CodeFor(resp.StatusCode), Message: resp.Status}
		}
		if resp.StatusCode == http.StatusConflict {
			e.is = ErrStaleEpoch
		}
		return fmt.Errorf("placement: %s %s: %w", method, path, e)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("placement: %s %s: %w", method, path, err)
	}
	return nil
}

// wireError is an error answer: the server's error, and the sentinel its
// status stands for (nil when none), so that errors.Is and errors.As work
// as they do on the server's side.
type wireError struct {
	err *api.Error
	is  error
}

func (e *wireError) Error() string { return e.err.Message }

func (e *wireError) Unwrap() []error {
	if e.is == nil {
		return []error{e.err}
	}
	return []error{e.err, e.is}
}
