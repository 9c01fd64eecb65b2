package placement

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
)

// TestClient drives every route through a real HTTP server with the
// client the servers use (client.Client).
func TestClient(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	srv := httptest.NewServer(Handler(st, nil))
	defer srv.Close()
	c := client.New(srv.URL + "/")

	s, err := c.StoragePlacement(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Status{Members: []Member{}}, s); diff != "" {
		t.Fatalf("status before anything (-want +got):\n%s", diff)
	}

	for _, n := range []string{"s1", "s2", "s3"} {
		if err := c.RegisterStorageMember(ctx, memberNamed(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RegisterStorageMember(ctx, Member{Name: "a/b"}); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("registering a bad name: %v, want an invalid error", err)
	}
	if err := c.DropInSync(ctx, 1, "s2"); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("drop before any configuration: %v, want a conflict (stale epoch)", err)
	}

	setConfig(t, st, Config{Epoch: 4, Primary: "s1", InSync: []string{"s1", "s2"}})
	if err := c.AddInSync(ctx, 4, "s3"); err != nil {
		t.Fatal(err)
	}
	if err := c.DropInSync(ctx, 4, "s2"); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		err  error
		want error
	}{
		{"drop at a stale epoch", c.DropInSync(ctx, 3, "s3"), api.ErrConflict},
		{"add at a stale epoch", c.AddInSync(ctx, 5, "s2"), api.ErrConflict},
		{"drop the primary", c.DropInSync(ctx, 4, "s1"), api.ErrInvalid},
		{"add an unregistered member", c.AddInSync(ctx, 4, "s9"), api.ErrNotFound},
	} {
		if !errors.Is(call.err, call.want) {
			t.Errorf("%s: %v, want %v", call.name, call.err, call.want)
		}
		if call.want != api.ErrConflict && errors.Is(call.err, api.ErrConflict) {
			t.Errorf("%s: %v is a conflict", call.name, call.err)
		}
		var ae *api.Error
		if !errors.As(call.err, &ae) || ae.Message == "" {
			t.Errorf("%s: %v carries no *api.Error with the server's message", call.name, call.err)
		}
	}

	s, err = c.StoragePlacement(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{
		Config:  Config{Epoch: 4, Primary: "s1", InSync: []string{"s1", "s3"}},
		Members: []Member{memberNamed("s1"), memberNamed("s2"), memberNamed("s3")},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Fatalf("status (-want +got):\n%s", diff)
	}
}

// TestHandlerRefusals: what the handler answers to requests no Client
// sends, as a status and an error body whose message is one line.
func TestHandlerRefusals(t *testing.T) {
	st := newStore(t)
	register(t, st, "s1", "s2")
	setConfig(t, st, Config{Epoch: 1, Primary: "s1", InSync: []string{"s1", "s2"}})
	srv := httptest.NewServer(Handler(st, nil))
	defer srv.Close()

	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"bad JSON", "/v1/storage/insync", `{"epoch":1,`, http.StatusBadRequest, api.CodeInvalid},
		{"bad member JSON", "/v1/storage/members", `["s1"]`, http.StatusBadRequest, api.CodeInvalid},
		{"unknown field", "/v1/storage/insync", `{"epoch":1,"name":"s2","op":"drop","force":true}`, http.StatusBadRequest, api.CodeInvalid},
		{"two values", "/v1/storage/insync", `{"epoch":1,"name":"s2","op":"drop"} {}`, http.StatusBadRequest, api.CodeInvalid},
		{"unknown op", "/v1/storage/insync", `{"epoch":1,"name":"s2","op":"remove"}`, http.StatusBadRequest, api.CodeInvalid},
		{"no op", "/v1/storage/insync", `{"epoch":1,"name":"s2"}`, http.StatusBadRequest, api.CodeInvalid},
		{"stale epoch", "/v1/storage/insync", `{"epoch":7,"name":"s2","op":"drop"}`, http.StatusConflict, api.CodeConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client().Post(srv.URL+tt.path, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, data, tt.status)
			}
			var body api.ErrorBody
			if err := json.Unmarshal(data, &body); err != nil || body.Error.Code != tt.code || body.Error.Message == "" {
				t.Fatalf("body %q (%v), want an error of code %s", data, err, tt.code)
			}
			if strings.Contains(body.Error.Message, "\n") {
				t.Fatalf("the message has line breaks: %q", body.Error.Message)
			}
		})
	}
	if diff := cmp.Diff(Config{Epoch: 1, Primary: "s1", InSync: []string{"s1", "s2"}}, current(t, st)); diff != "" {
		t.Fatalf("a refused request changed the config (-want +got):\n%s", diff)
	}
}
