package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes. The controller maps each to one HTTP status (HTTPStatus) and
// the client maps the status back, so errors.Is works on both sides of the wire.
const (
	CodeInvalid      = "invalid"      // 400: the request or model is wrong; Message names the field
	CodeNotFound     = "not_found"    // 404
	CodeConflict     = "conflict"     // 409: e.g. a port in use, a name taken
	CodeTooLarge     = "too_large"    // 413
	CodeUnavailable  = "unavailable"  // 503: e.g. not the leader, shutting down
	CodeInternal     = "internal"     // 500
	CodeUnauthorized = "unauthorized" // 401
	CodeForbidden    = "forbidden"    // 403
)

// HeaderOutcome, set to OutcomeUnknown on a 503 answer, says that the
// request may have taken effect before the server became unavailable (the
// store lost leadership after the write entered its log, or the leader a
// request was forwarded to went away while it had it). Without it a 503
// with Retry-After means the request was not carried out, and any request
// may be sent again; with it, only one whose method is idempotent (GET,
// HEAD, PUT, DELETE) may.
const (
	HeaderOutcome  = "Weft-Outcome"
	OutcomeUnknown = "unknown"
)

// Error is the error every API call returns, in the body as
// {"error": {"code": "...", "message": "..."}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Is lets errors.Is(err, api.ErrNotFound) match any error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels for errors.Is; their empty Message makes them match by code.
var (
	ErrInvalid     = &Error{Code: CodeInvalid}
	ErrNotFound    = &Error{Code: CodeNotFound}
	ErrConflict    = &Error{Code: CodeConflict}
	ErrTooLarge    = &Error{Code: CodeTooLarge}
	ErrUnavailable = &Error{Code: CodeUnavailable}
	ErrInternal    = &Error{Code: CodeInternal}
	ErrForbidden   = &Error{Code: CodeForbidden}
)

// Errorf makes an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorBody is the JSON body of an error answer.
type ErrorBody struct {
	Error Error `json:"error"`
}

var codeStatus = map[string]int{
	CodeInvalid:      http.StatusBadRequest,
	CodeNotFound:     http.StatusNotFound,
	CodeConflict:     http.StatusConflict,
	CodeTooLarge:     http.StatusRequestEntityTooLarge,
	CodeUnavailable:  http.StatusServiceUnavailable,
	CodeInternal:     http.StatusInternalServerError,
	CodeUnauthorized: http.StatusUnauthorized,
	CodeForbidden:    http.StatusForbidden,
}

// HTTPStatus is the status an error is answered with; errors that are not
// *Error are internal.
func HTTPStatus(err error) int {
	var e *Error
	if errors.As(err, &e) {
		if s, ok := codeStatus[e.Code]; ok {
			return s
		}
	}
	return http.StatusInternalServerError
}

// CodeFor maps an HTTP status back to an error code (for answers whose body
// is not an ErrorBody, e.g. from a proxy).
func CodeFor(status int) string {
	for c, s := range codeStatus {
		if s == status {
			return c
		}
	}
	return CodeInternal
}
