package placement

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/state"
)

// maxBody bounds every request body; the largest is a Member.
const maxBody = 64 << 10

// Status is what GET /v1/storage/config answers (Config.Epoch 0: no
// primary chosen yet).
type Status = api.StoragePlacement

// InSyncChange is the body of POST /v1/storage/insync.
type InSyncChange = api.StorageInSyncChange

// Handler serves the storage configuration:
//
//	POST /v1/storage/members  a Member: Register
//	POST /v1/storage/insync   an InSyncChange: Add or Drop
//	GET  /v1/storage/config   the Status
//
// It applies writes to st itself: mount it behind a handler that forwards
// writes to the leader. A body that is not the expected JSON, or an
// unknown op, is answered 400; a stale epoch 409; other errors as
// httpapi.WriteError answers them, logging internal ones to log (nil: not
// logged). client.Client calls these routes.
func Handler(st state.Store, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h httpapi.HandlerFunc) {
		mux.HandleFunc(pattern, httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
			err := h(w, r)
			if errors.Is(err, ErrStaleEpoch) {
				err = api.Errorf(api.CodeConflict, "%v", err)
			}
			return err
		}))
	}
	route("POST /v1/storage/members", func(w http.ResponseWriter, r *http.Request) error {
		var m Member
		if err := decode(w, r, &m); err != nil {
			return err
		}
		if err := Register(r.Context(), st, m); err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, struct{}{})
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
		httpapi.WriteJSON(w, http.StatusOK, struct{}{})
		return nil
	})
	route("GET /v1/storage/config", func(w http.ResponseWriter, r *http.Request) error {
		cfg, _, _ := Current(st)
		members := Members(st)
		if members == nil {
			members = []Member{}
		}
		httpapi.WriteJSON(w, http.StatusOK, Status{Config: cfg, Members: members})
		return nil
	})
	return mux
}

// decode reads a JSON body strictly, as the controller's API does.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return httpapi.Decode(w, r, maxBody, v)
}
