// Package httpapi is the server side of the api wire format, shared by
// every HTTP API Weft serves (the controller's, the cluster's, the storage
// placement's, a node agent's): the one place an error becomes a status,
// and the JSON answers and request bodies all of them write and read.
//
// The error vocabulary it maps: an *api.Error is answered with its code's
// status (api.HTTPStatus); state.ErrUnavailable (a replicated store that
// is not the leader, or lost leadership before a commit was known) and
// state.ErrClosed (a server shutting down) are answered 503 with
// Retry-After, which the client takes as "ask again, perhaps another
// server", and those that also match state.ErrUnknownOutcome (the write
// may have committed) carry api.HeaderOutcome as well, so that the client
// asks again only when the request is idempotent; a cancelled request is
// not answered; anything else is a 500, logged, since it is a bug or a
// broken disk rather than a bad request.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// RetryAfter is the Retry-After every 503 carries, in seconds: an election
// takes about a second.
const RetryAfter = "1"

// HandlerFunc is a handler that returns its error for Handle to render.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts h to an http.HandlerFunc whose errors WriteError renders,
// logging internal errors to log (nil: not logged).
func Handle(log *slog.Logger, h HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(log, w, r, err)
		}
	}
}

// AsAPIError is err in the API's vocabulary: the *api.Error it carries,
// an unavailable error for the store's retryable errors, and an internal
// error otherwise. Messages are made one line.
func AsAPIError(err error) *api.Error {
	var e *api.Error
	switch {
	case errors.As(err, &e):
		e = &api.Error{Code: e.Code, Message: e.Message}
	case errors.Is(err, state.ErrUnavailable), errors.Is(err, state.ErrClosed):
		e = &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
	default:
		e = &api.Error{Code: api.CodeInternal, Message: fmt.Sprint(err)}
	}
	e.Message = strings.Join(strings.Fields(e.Message), " ")
	return e
}

// WriteError answers err as the API's JSON error (see the package
// comment for the mapping). r may be nil when no request is at hand; then
// a cancelled context is not recognised and an internal error is logged
// without the request's method and path.
func WriteError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	if r != nil && errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away: nobody reads the answer
	}
	e := AsAPIError(err)
	if e.Code == api.CodeInternal && log != nil {
		if r != nil {
			log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		} else {
			log.Error("api request failed", "err", err)
		}
	}
	status := api.HTTPStatus(e)
	if status == http.StatusServiceUnavailable {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", RetryAfter)
		}
		if errors.Is(err, state.ErrUnknownOutcome) {
			w.Header().Set(api.HeaderOutcome, api.OutcomeUnknown)
		}
	}
	WriteJSON(w, status, api.ErrorBody{Error: *e})
}

// WriteJSON answers v as indented JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to tell it
}

// Decode reads a JSON body of at most limit bytes strictly into v: unknown
// fields and trailing data are refused, as api.CodeInvalid, and a longer
// body as api.CodeTooLarge.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return api.Errorf(api.CodeTooLarge, "request body larger than %d bytes", limit)
		}
		return api.Errorf(api.CodeInvalid, "request body: %v", err)
	}
	if dec.More() {
		return api.Errorf(api.CodeInvalid, "request body: more than one JSON value")
	}
	return nil
}
