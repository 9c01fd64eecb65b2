package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/process"
)

// TestAgentAPIErrorsAreJSON: the agent's API answers its errors as the
// API's JSON error, whatever the message holds: an instance ID with a
// quote and a newline (a path segment is anything) used to be pasted into
// hand-written JSON, which came out broken.
func TestAgentAPIErrorsAreJSON(t *testing.T) {
	d, err := process.New(process.Config{CgroupDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Name: "node-1", DataDir: t.TempDir(), Drivers: []driver.Driver{d}}, client.New("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.ln.Close(); a.mdln.Close() })
	srv := httptest.NewServer(a.routes())
	defer srv.Close()

	odd := "web-0 \"quoted\"\nsecond line"
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		code, message             string
	}{
		{"logs", http.MethodGet, "/v1/instances/" + url.PathEscape(odd) + "/logs", a.apiToken, 404, api.CodeNotFound, "instance " + odd + " does not run on this node"},
		{"exec", http.MethodPost, "/v1/instances/" + url.PathEscape(odd) + "/exec", a.apiToken, 404, api.CodeNotFound, "instance " + odd + " does not run on this node"},
		{"no token", http.MethodGet, "/v1/instances/web-0/logs", "", 401, api.CodeUnauthorized, "a node's agent answers its cluster's servers only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(`{"command":["true"]}`))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			var body api.ErrorBody
			if err := json.Unmarshal(data, &body); err != nil {
				t.Fatalf("%d %q is not JSON: %v", resp.StatusCode, data, err)
			}
			if resp.StatusCode != tc.status || body.Error.Code != tc.code {
				t.Errorf("%d %+v, want %d %s", resp.StatusCode, body.Error, tc.status, tc.code)
			}
			// WriteError makes the message one line.
			if want := strings.Join(strings.Fields(tc.message), " "); body.Error.Message != want {
				t.Errorf("message %q, want %q", body.Error.Message, want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}
