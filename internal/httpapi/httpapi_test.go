package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/raftstore"
	"github.com/weftcloud/weft/internal/state"
)

// closedStoreError is what a real state store answers once closed.
func closedStoreError(t *testing.T) error {
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = db.Apply(context.Background(), []state.Op{{Kind: state.KindNodes, Key: "a", Value: []byte(`1`)}})
	if err == nil {
		t.Fatal("Apply on a closed store succeeded")
	}
	return err
}

// TestWriteError: the error vocabulary and the statuses, headers and
// bodies it is answered with.
func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		code    string
		retry   bool // Retry-After: 1
		unknown bool // Weft-Outcome: unknown
		logged  bool
	}{
		{"invalid", api.Errorf(api.CodeInvalid, "name: required"), 400, api.CodeInvalid, false, false, false},
		{"unauthorized", api.Errorf(api.CodeUnauthorized, "no token"), 401, api.CodeUnauthorized, false, false, false},
		{"forbidden", api.Errorf(api.CodeForbidden, "not yours"), 403, api.CodeForbidden, false, false, false},
		{"not found", fmt.Errorf("fabric: service web: %w", api.Errorf(api.CodeNotFound, "no service web")), 404, api.CodeNotFound, false, false, false},
		{"conflict", api.Errorf(api.CodeConflict, "port 80 in use"), 409, api.CodeConflict, false, false, false},
		{"too large", api.Errorf(api.CodeTooLarge, "body too large"), 413, api.CodeTooLarge, false, false, false},
		{"unavailable", api.Errorf(api.CodeUnavailable, "joining"), 503, api.CodeUnavailable, true, false, false},
		{"not leader", fmt.Errorf("fabric: deploy: %w", raftstore.ErrNotLeader{LeaderID: "s2", Leader: "10.0.0.2:7001"}), 503, api.CodeUnavailable, true, false, false},
		{"no leader", raftstore.ErrNotLeader{}, 503, api.CodeUnavailable, true, false, false},
		{"outcome unknown", fmt.Errorf("raftstore: apply: %w: %w", raftstore.ErrUnknownOutcome, errors.New("leadership lost")), 503, api.CodeUnavailable, true, true, false},
		{"proxy lost the leader", errors.Join(api.Errorf(api.CodeUnavailable, "leader gone"), state.ErrUnknownOutcome), 503, api.CodeUnavailable, true, true, false},
		{"closed", closedStoreError(t), 503, api.CodeUnavailable, true, false, false},
		{"internal", errors.New("state: write: input/output error"), 500, api.CodeInternal, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			w := httptest.NewRecorder()
			httpapi.WriteError(log, w, httptest.NewRequest("PUT", "/v1/services/web", nil), tc.err)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if got := w.Header().Get("Retry-After") == "1"; got != tc.retry {
				t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
			}
			if got := w.Header().Get(api.HeaderOutcome) == api.OutcomeUnknown; got != tc.unknown {
				t.Errorf("%s %q", api.HeaderOutcome, w.Header().Get(api.HeaderOutcome))
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var body api.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if body.Error.Code != tc.code || body.Error.Message == "" {
				t.Errorf("body %+v, want code %s and a message", body.Error, tc.code)
			}
			if got := strings.Contains(logs.String(), "api request failed"); got != tc.logged {
				t.Errorf("logged %v, want %v: %s", got, tc.logged, logs.String())
			}
			if tc.logged && !strings.Contains(logs.String(), "path=/v1/services/web") {
				t.Errorf("the log does not name the request: %s", logs.String())
			}
		})
	}
}

// TestWriteErrorOneLine: a message of several lines is answered on one.
func TestWriteErrorOneLine(t *testing.T) {
	w := httptest.NewRecorder()
	httpapi.WriteError(nil, w, nil, api.Errorf(api.CodeInvalid, "first\n\tsecond  third\n"))
	var body api.ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Error.Message != "first second third" {
		t.Errorf("message %q", body.Error.Message)
	}
}

// TestWriteErrorCancelled: a request whose client went away is not
// answered (nobody reads it) nor logged as a failure.
func TestWriteErrorCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var logs bytes.Buffer
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/v1/events", nil).WithContext(ctx)
	httpapi.WriteError(slog.New(slog.NewTextHandler(&logs, nil)), w, r, fmt.Errorf("fabric: wait: %w", context.Canceled))
	if w.Body.Len() != 0 || logs.Len() != 0 {
		t.Errorf("answered %q, logged %q", w.Body, logs.String())
	}
	// The same error while the request is alive is an internal one.
	w = httptest.NewRecorder()
	httpapi.WriteError(nil, w, httptest.NewRequest("GET", "/v1/events", nil), context.Canceled)
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status %d", w.Code)
	}
}

// TestHandle: a handler's returned error is rendered; nil leaves its own
// answer.
func TestHandle(t *testing.T) {
	h := httpapi.Handle(nil, func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Query().Has("fail") {
			return api.Errorf(api.CodeNotFound, "no such thing")
		}
		httpapi.WriteJSON(w, http.StatusCreated, map[string]string{"name": "web"})
		return nil
	})
	w := httptest.NewRecorder()
	h(w, httptest.NewRequest("POST", "/x?fail", nil))
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"not_found"`) {
		t.Errorf("failing handler: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	h(w, httptest.NewRequest("POST", "/x", nil))
	if w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), `"name": "web"`) {
		t.Errorf("handler: %d %s", w.Code, w.Body)
	}
}

// TestDecode: a body is read strictly and its faults named.
func TestDecode(t *testing.T) {
	type spec struct {
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		name, body string
		code       string // "" when accepted
		message    string
	}{
		{"ok", `{"name":"web"}`, "", ""},
		{"unknown field", `{"name":"web","replicas":3}`, api.CodeInvalid, `unknown field "replicas"`},
		{"two values", `{"name":"web"} {"name":"db"}`, api.CodeInvalid, "more than one JSON value"},
		{"not JSON", `name: web`, api.CodeInvalid, "request body"},
		{"too large", `{"name":"` + strings.Repeat("x", 100) + `"}`, api.CodeTooLarge, "larger than 64 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v spec
			err := httpapi.Decode(httptest.NewRecorder(), httptest.NewRequest("PUT", "/", strings.NewReader(tc.body)), 64, &v)
			if tc.code == "" {
				if err != nil || v.Name != "web" {
					t.Errorf("Decode = %v, %+v", err, v)
				}
				return
			}
			var e *api.Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Message, tc.message) {
				t.Errorf("Decode = %v, want %s naming %q", err, tc.code, tc.message)
			}
		})
	}
}
