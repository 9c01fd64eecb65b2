package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

var (
	testInstances = []api.Instance{
		{ID: "hello-web-0-abcd", Service: "hello", Role: "web", Slot: 0, Node: "node-1", Version: 2, Desired: "running",
			State: "running", Health: "healthy", Address: "127.0.0.1:40001", Ports: map[string]int{"http": 40001}, CreatedAt: now, UpdatedAt: now,
			Extensions: []api.ExtensionStatus{{Name: "monitor", Version: "1.0", Status: "success", Handler: "enable", Message: "enable succeeded: sampling every 1m0s",
				Figures: &api.GuestFigures{CPUPercent: 7.5, CPUs: 1, MemoryTotal: 128 << 20, MemoryUsed: 21 << 20, DiskTotal: 20 << 30, DiskUsed: 6 << 20, SampledAt: now}}}},
		{ID: "hello-web-1-efgh", Service: "hello", Role: "web", Slot: 1, Node: "node-2", Version: 2, Desired: "running", Draining: true,
			State: "running", Health: "unhealthy", Address: "127.0.0.1:40002", Restarts: 3, FailedStarts: 1,
			LastError: "failed its health probe 3 times (GET http://127.0.0.1:40002/healthz: 503 Service Unavailable)", CreatedAt: now, UpdatedAt: now},
		{ID: "hello-worker-0-ijkl", Service: "hello", Role: "worker", Version: 2, Desired: "running",
			State: "pending", Health: "unknown", Message: "no node has room", CreatedAt: now, UpdatedAt: now},
	}
	testNodes = []api.Node{
		{Name: "node-1", Address: "http://127.0.0.1:41001", Host: "127.0.0.1", State: "ready", FaultDomain: "fd1",
			Capacity: api.Resources{CPU: 4, Memory: 4 << 30}, Allocated: api.Resources{CPU: 0.35, Memory: 192 << 20},
			Runtimes: []string{"process", "container"}, Instances: 2, LastHeartbeat: now.Add(-time.Second), RegisteredAt: now.Add(-time.Hour)},
		{Name: "node-2", Address: "http://127.0.0.1:41002", Host: "127.0.0.1", State: "draining", FaultDomain: "fd2",
			Capacity: api.Resources{CPU: 2, Memory: 24683620 << 10}, Runtimes: []string{"process"}, LastHeartbeat: now.Add(-90 * time.Second)},
	}
	testService = api.Service{
		Name: "hello", Tenant: "default", Version: 2, Status: "upgrading",
		Spec: api.ServiceSpec{Name: "hello", UpgradeDomains: 5, Roles: []api.RoleSpec{
			{Name: "web", Kind: "web", Runtime: "process", Package: "sha256:" + strings.Repeat("ab", 32), Command: []string{"./hello"},
				Instances: 3, Persistence: "ephemeral", Endpoints: []api.Endpoint{{Name: "http", Protocol: "http", Port: 8080}}},
			{Name: "worker", Kind: "worker", Runtime: "process", Package: "sha256:" + strings.Repeat("ab", 32), Command: []string{"./hello"},
				Instances: 1, Persistence: "ephemeral"},
		}},
		Upgrade: &api.Upgrade{FromVersion: 1, ToVersion: 2, Domain: 1, Domains: 5, StartedAt: now},
		Roles: []api.RoleStatus{{Name: "web", Desired: 3, Running: 2, Healthy: 1, Pending: 1, Status: "updating"},
			{Name: "worker", Desired: 1, Status: "degraded"}},
		CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-5 * time.Minute),
	}
)

// testFailing is stable, with a role whose instances all fail to start.
var testFailing = api.Service{
	Name: "broken", Tenant: "default", Version: 1, Status: "stable",
	Spec: api.ServiceSpec{Name: "broken", UpgradeDomains: 5, Roles: []api.RoleSpec{
		{Name: "web", Kind: "web", Runtime: "process", Package: "sha256:" + strings.Repeat("cd", 32), Command: []string{"python3", "app.py"},
			Instances: 2, Persistence: "ephemeral", Endpoints: []api.Endpoint{{Name: "http", Protocol: "http", Port: 8081}}},
	}},
	Roles:     []api.RoleStatus{{Name: "web", Desired: 2, Status: "failing"}},
	CreatedAt: now.Add(-time.Minute), UpdatedAt: now.Add(-time.Minute),
}

// testVMService is what a persistent VM (weft vm create db) is stored as.
var testVMService = api.Service{
	Name: "db", Tenant: "default", Version: 1, Status: "stable",
	Spec: api.ServiceSpec{Name: "db", UpgradeDomains: 1, Roles: []api.RoleSpec{
		{Name: api.VMRole, Kind: api.KindVM, Runtime: api.RuntimeVM, Image: "tiny", Instances: 1, Persistence: api.Persistent,
			Size: api.Size{CPU: 1, Memory: 256 << 20}},
	}},
	Roles:     []api.RoleStatus{{Name: api.VMRole, Desired: 1, Running: 1, Healthy: 1, Status: "healthy"}},
	CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour),
}

// fakeController answers the read endpoints with the fixed objects above.
func fakeController(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/instances", func(w http.ResponseWriter, r *http.Request) { answer(w, testInstances) })
	mux.HandleFunc("GET /v1/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, in := range testInstances {
			if in.ID == r.PathValue("id") {
				answer(w, in)
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		answer(w, api.ErrorBody{Error: api.Error{Code: api.CodeNotFound, Message: "no instance " + r.PathValue("id")}})
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) { answer(w, testNodes) })
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		answer(w, []api.Service{testService, testFailing, testVMService})
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "hello" {
			w.WriteHeader(http.StatusNotFound)
			answer(w, api.ErrorBody{Error: api.Error{Code: api.CodeNotFound, Message: "no service named " + r.PathValue("name")}})
			return
		}
		answer(w, testService)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// weft runs a command line against addr with a fixed clock and nothing
// on stdin (never a terminal, whatever runs the tests).
func weft(t *testing.T, addr string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return weftFrom(t, strings.NewReader(""), addr, args...)
}

// weftFrom is weft with stdin.
func weftFrom(t *testing.T, stdin io.Reader, addr string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	a.stdin = stdin
	a.now = func() time.Time { return now }
	a.pollInterval = time.Millisecond
	code = a.execute(context.Background(), append([]string{"--addr", addr}, args...))
	return out.String(), errb.String(), code
}

func TestGolden(t *testing.T) {
	srv := fakeController(t)
	cases := []struct {
		golden string
		args   []string
	}{
		{"instances.golden", []string{"instances"}},
		{"instances.json.golden", []string{"instances", "-o", "json"}},
		{"instance-show.golden", []string{"instance", "show", "hello-web-0-abcd"}},
		{"instance-show-pending.golden", []string{"instance", "show", "hello-worker-0-ijkl"}},
		{"instance-show.json.golden", []string{"instance", "show", "hello-web-0-abcd", "-o", "json"}},
		{"nodes.golden", []string{"nodes"}},
		{"nodes.json.golden", []string{"nodes", "-o", "json"}},
		{"services.golden", []string{"services"}},
		{"services.json.golden", []string{"services", "-o", "json"}},
		{"service-show.golden", []string{"service", "show", "hello"}},
		{"service-show.json.golden", []string{"service", "show", "hello", "-o", "json"}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := weft(t, srv.URL, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, tc.golden, out)
		})
	}
}

// checkGolden compares out with testdata/name (rewritten with -update); a
// .json.golden must also be valid JSON.
func checkGolden(t *testing.T, name, out string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), out); diff != "" {
		t.Errorf("output differs from %s (-want +got):\n%s", path, diff)
	}
	if strings.HasSuffix(name, ".json.golden") && !json.Valid([]byte(out)) {
		t.Errorf("-o json printed invalid JSON")
	}
}

// The JSON output is the API's objects, field for field.
func TestJSONRoundTrips(t *testing.T) {
	srv := fakeController(t)
	out, _, _ := weft(t, srv.URL, "instances", "-o", "json")
	var got []api.Instance
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(testInstances, got); diff != "" {
		t.Errorf("instances -o json (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	srv := fakeController(t)
	cases := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"service", "show", "nope"}, 1, "weft: no service named nope\n"},
		{[]string{"instance", "show", "nope"}, 1, "weft: no instance nope\n"},
		{[]string{"instance", "show"}, 2, ""},
		{[]string{"scale", "hello", "web"}, 2, ""},
		{[]string{"scale", "hello", "web", "many"}, 2, ""},
		{[]string{"instances", "--bogus"}, 2, ""},
		{[]string{"frobnicate"}, 2, ""},
		{[]string{"services", "-o", "yaml"}, 2, ""},
		{[]string{"deploy"}, 2, ""},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := weft(t, srv.URL, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d", code, tc.wantCode)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "weft: ") {
				t.Errorf("stderr %q is not one line starting with weft:", errOut)
			}
			if tc.wantStderr != "" && errOut != tc.wantStderr {
				t.Errorf("stderr %q, want %q", errOut, tc.wantStderr)
			}
		})
	}
	// An unreachable controller is one line too.
	_, errOut, code := weft(t, "http://127.0.0.1:1", "nodes")
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("unreachable controller: exit %d, stderr %q", code, errOut)
	}
}

// deployController accepts a package upload and a deploy, and then answers
// the service's status from a script for --wait.
type deployController struct {
	mu       sync.Mutex
	digest   string // of the uploaded bytes
	deployed api.ServiceSpec
	statuses []api.Service // answered in turn by GET; the last one repeats
	insts    []api.Instance
}

func (d *deployController) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/packages", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(data)
		d.mu.Lock()
		d.digest = "sha256:" + hex.EncodeToString(sum[:])
		p := api.Package{Digest: d.digest, Size: int64(len(data))}
		d.mu.Unlock()
		json.NewEncoder(w).Encode(p)
	})
	mux.HandleFunc("PUT /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		var spec api.ServiceSpec
		json.NewDecoder(r.Body).Decode(&spec)
		d.mu.Lock()
		d.deployed = spec
		d.mu.Unlock()
		json.NewEncoder(w).Encode(api.Service{Name: spec.Name, Version: 1, Spec: spec, Status: "stable"})
	})
	mux.HandleFunc("POST /v1/services/{name}/plan", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Plan{Service: r.PathValue("name"), Create: true, NewVersion: 1})
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		s := d.statuses[0]
		if len(d.statuses) > 1 {
			d.statuses = d.statuses[1:]
		}
		d.mu.Unlock()
		json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("GET /v1/instances", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		json.NewEncoder(w).Encode(nonNil(d.insts))
	})
	return mux
}

func writeModel(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site", "server"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	model := "name: hello\nroles:\n  - name: web\n    kind: worker\n    runtime: process\n    package: ./site\n    command: [./server]\n    instances: 2\n"
	file := filepath.Join(dir, "service.yaml")
	if err := os.WriteFile(file, []byte(model), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestDeployUploadsPackage(t *testing.T) {
	d := &deployController{}
	srv := httptest.NewServer(d.handler())
	defer srv.Close()
	out, errOut, code := weft(t, srv.URL, "deploy", "-f", writeModel(t))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if d.digest == "" || d.deployed.Roles[0].Package != d.digest {
		t.Errorf("deployed package %q, uploaded %q", d.deployed.Roles[0].Package, d.digest)
	}
	if want := "service hello: version 1, stable\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
}

func TestDeployWait(t *testing.T) {
	roles := func(healthy int) []api.RoleStatus {
		return []api.RoleStatus{{Name: "web", Desired: 2, Healthy: healthy}}
	}
	spec := api.ServiceSpec{Name: "hello", Roles: []api.RoleSpec{{Name: "web", Instances: 2}}}
	t.Run("stable", func(t *testing.T) {
		d := &deployController{statuses: []api.Service{
			{Name: "hello", Version: 1, Spec: spec, Status: "upgrading", Upgrade: &api.Upgrade{Domain: 0, Domains: 5}, Roles: roles(0)},
			{Name: "hello", Version: 1, Spec: spec, Status: "stable", Roles: roles(1)},
			{Name: "hello", Version: 1, Spec: spec, Status: "stable", Roles: roles(2)},
		}}
		srv := httptest.NewServer(d.handler())
		defer srv.Close()
		_, errOut, code := weft(t, srv.URL, "deploy", "-f", writeModel(t), "--wait")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"upgrading update domain 1 of 5", "web: 1/2 healthy (version 1)", "web: 2/2 healthy (version 1)"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("progress %q lacks %q", errOut, want)
			}
		}
	})
	t.Run("halted", func(t *testing.T) {
		d := &deployController{statuses: []api.Service{
			{Name: "hello", Version: 2, Spec: spec, Status: "halted", Message: "update domain 1 did not become healthy", Roles: roles(0)},
		}}
		srv := httptest.NewServer(d.handler())
		defer srv.Close()
		_, errOut, code := weft(t, srv.URL, "deploy", "-f", writeModel(t), "--wait")
		if code != 1 || !strings.HasSuffix(errOut, "weft: service hello halted: update domain 1 did not become healthy\n") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("failing", func(t *testing.T) {
		failed := func(slot int, errs ...string) api.Instance {
			in := api.Instance{ID: fmt.Sprintf("hello-web-%d-abcd", slot), Service: "hello", Role: "web", Slot: slot, Node: "node-1",
				Desired: "running", State: "starting", Health: "unhealthy", Restarts: len(errs), FailedStarts: len(errs)}
			if len(errs) > 0 {
				in.LastError = errs[len(errs)-1]
			}
			return in
		}
		const notFound = `failed to start: process: start hello-web-0-abcd: command "python3" not found in PATH /usr/local/bin:/usr/bin:/bin`
		d := &deployController{
			statuses: []api.Service{
				{Name: "hello", Version: 1, Spec: spec, Status: "stable", Roles: []api.RoleStatus{{Name: "web", Desired: 2, Status: "updating"}}},
				{Name: "hello", Version: 1, Spec: spec, Status: "stable", Roles: []api.RoleStatus{{Name: "web", Desired: 2, Status: "failing"}}},
			},
			insts: []api.Instance{failed(0, notFound, notFound, notFound), failed(1, "exited with code 3", "exited with code 3", "exited with code 3")},
		}
		srv := httptest.NewServer(d.handler())
		defer srv.Close()
		_, errOut, code := weft(t, srv.URL, "deploy", "-f", writeModel(t), "--wait", "--timeout", "5s")
		wantErr := "weft: service hello: role web is failing: instance hello-web-0-abcd " + notFound + "; instance hello-web-1-abcd exited with code 3\n"
		if code != 1 || !strings.HasSuffix(errOut, wantErr) {
			t.Errorf("exit %d, stderr %q\nwant it to end in %q", code, errOut, wantErr)
		}
		// The progress names each waiting instance's reason.
		if want := "web: 0/2 healthy (version 1); hello-web-0-abcd: failed to start: process: start"; !strings.Contains(errOut, want) {
			t.Errorf("progress %q lacks %q", errOut, want)
		}
		if want := "web: 0/2 healthy (version 1), failing; "; !strings.Contains(errOut, want) {
			t.Errorf("progress %q lacks %q", errOut, want)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		d := &deployController{statuses: []api.Service{{Name: "hello", Version: 1, Spec: spec, Status: "stable", Roles: roles(1)}}}
		srv := httptest.NewServer(d.handler())
		defer srv.Close()
		_, errOut, code := weft(t, srv.URL, "deploy", "-f", writeModel(t), "--wait", "--timeout", "50ms")
		if code != 1 || !strings.Contains(errOut, "not stable after 50ms") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

func TestEventsFollow(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := uint64(6); i <= 7; i++ {
			json.NewEncoder(w).Encode(api.Event{Seq: i, Time: now, Level: "info", Type: "instance.placed", Service: "hello", Role: "web", Message: "placed"})
		}
	}))
	defer srv.Close()
	out, errOut, code := weft(t, srv.URL, "events", "-f", "--since", "5", "-o", "json")
	if query != "follow=1&since=5" {
		t.Errorf("query %q", query)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], `"seq":7`) {
		t.Errorf("stdout %q, want two NDJSON events", out)
	}
	// The controller went away: that is an error, reported on one line.
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestMutatingVerbs(t *testing.T) {
	type call struct{ method, path, body string }
	var calls []call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		calls = append(calls, call{r.Method, r.URL.EscapedPath(), strings.TrimSpace(string(body))})
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/nodes/"):
			json.NewEncoder(w).Encode(api.Node{Name: "node 2", State: "draining"})
		case strings.HasPrefix(r.URL.Path, "/v1/instances/"):
			io.WriteString(w, "line 1\nline 2\n")
		default:
			json.NewEncoder(w).Encode(api.Service{Name: "hello", Version: 3, Status: "upgrading"})
		}
	}))
	defer srv.Close()
	for _, args := range [][]string{
		{"scale", "hello", "web", "5"},
		{"rollback", "hello"},
		{"service", "delete", "hello"},
		{"node", "drain", "node 2"},
		{"node", "undrain", "node-2"},
		{"logs", "hello-web-0", "--tail", "10"},
	} {
		if _, errOut, code := weft(t, srv.URL, args...); code != 0 {
			t.Errorf("%v: exit %d: %s", args, code, errOut)
		}
	}
	want := []call{
		{"POST", "/v1/services/hello/scale", `{"role":"web","instances":5}`},
		{"POST", "/v1/services/hello/rollback", ""},
		{"DELETE", "/v1/services/hello", ""},
		{"POST", "/v1/nodes/node%202/drain", ""},
		{"POST", "/v1/nodes/node-2/undrain", ""},
		{"GET", "/v1/instances/hello-web-0/logs", ""},
	}
	if diff := cmp.Diff(want, calls, cmp.AllowUnexported(call{})); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestRolloutNamesWhyInstancesWait: the progress line gives each waiting
// instance's reason, a start error or why it is not placed, and nothing
// for healthy or stopping instances.
func TestRolloutNamesWhyInstancesWait(t *testing.T) {
	svc := api.Service{Name: "hello", Version: 1, Status: "stable",
		Spec:  api.ServiceSpec{Name: "hello", Roles: []api.RoleSpec{{Name: "web", Instances: 3}}},
		Roles: []api.RoleStatus{{Name: "web", Desired: 3, Healthy: 1, Running: 1, Pending: 1, Status: "degraded"}}}
	ins := []api.Instance{
		{ID: "hello-web-0-a", Role: "web", Desired: "running", State: "running", Health: "healthy", LastError: "exited with code 1"},
		{ID: "hello-web-1-b", Role: "web", Desired: "running", State: "starting", Health: "unhealthy", LastError: "exited with code 1\nand more"},
		{ID: "hello-web-2-c", Role: "web", Desired: "running", State: "pending", Health: "unknown", Message: "no node has 8 CPU free"},
		{ID: "hello-web-2-d", Role: "web", Desired: "stopped", State: "stopping", LastError: "exited with code 2"},
	}
	got, done := rollout(svc, ins)
	want := "web: 1/3 healthy (version 1), 1 pending, degraded; hello-web-1-b: exited with code 1 and more; hello-web-2-c: no node has 8 CPU free"
	if got != want || done {
		t.Errorf("rollout: %q, done %v\nwant %q, not done", got, done, want)
	}
}

// weft --version prints what weft version does.
func TestVersionFlag(t *testing.T) {
	want, _, _ := weft(t, "http://127.0.0.1:1", "version")
	if !strings.HasPrefix(want, "weft ") {
		t.Fatalf("weft version printed %q", want)
	}
	out, errOut, code := weft(t, "http://127.0.0.1:1", "--version")
	if code != 0 || out != want || errOut != "" {
		t.Errorf("weft --version: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}
}

// vm create --wait reports each state the VM passes on stderr, one clean
// line each (no trailing space while it has no node yet).
func TestVMCreateProgress(t *testing.T) {
	states := []api.VM{
		{Name: "db", Image: "tiny", CPUs: 1, Memory: 256 << 20, State: "pending", Health: "unknown"},
		{Name: "db", Image: "tiny", CPUs: 1, Memory: 256 << 20, State: "starting", Health: "unknown", Node: "node-1"},
		{Name: "db", Image: "tiny", CPUs: 1, Memory: 256 << 20, State: "running", Health: "healthy", Node: "node-1"},
	}
	var mu sync.Mutex
	polls := 0
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vms", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(states[0])
	})
	mux.HandleFunc("GET /v1/vms/db", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(states[min(polls, len(states)-1)])
		polls++
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, errOut, code := weft(t, srv.URL, "vm", "create", "db", "--image", "tiny", "--wait")
	want := "creating VM db: copying image tiny to its disk\n" +
		"VM db: pending/unknown\n" +
		"VM db: starting/unknown on node-1\n"
	if code != 0 || errOut != want {
		t.Errorf("exit %d, stderr (-want +got):\n%s", code, cmp.Diff(want, errOut))
	}
}
