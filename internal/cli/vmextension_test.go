package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
)

// vmExtensionServer serves one VM, db, whose extensions the requests set
// and remove as the controller would (a version left out is pinned to
// 1.0, protected settings are kept and never shown); it records the
// bodies it was sent.
func vmExtensionServer(t *testing.T) (*httptest.Server, func() []api.SetVMExtension) {
	var mu sync.Mutex
	var sent []api.SetVMExtension
	exts := []api.VMExtension{{Name: "monitor", Version: "1.0", Status: &api.ExtensionStatus{
		Name: "monitor", Version: "1.0", Status: api.ExtensionSuccess, Handler: "enable", Message: "enable succeeded: sampling every 1m0s", UpdatedAt: now,
		Figures: &api.GuestFigures{CPUPercent: 12.5, CPUs: 1, Load1: new(0.25), MemoryTotal: 240 << 20, MemoryUsed: 40 << 20,
			DiskTotal: 500 << 20, DiskUsed: 100 << 20, SampledAt: now}}}}
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter, msg string) {
		w.WriteHeader(http.StatusNotFound)
		answer(w, api.ErrorBody{Error: api.Error{Code: api.CodeNotFound, Message: msg}})
	}
	mux.HandleFunc("GET /v1/vms/{name}/extensions", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "db" {
			notFound(w, "no VM named "+r.PathValue("name"))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		answer(w, exts)
	})
	mux.HandleFunc("PUT /v1/vms/db/extensions/{ext}", func(w http.ResponseWriter, r *http.Request) {
		var req api.SetVMExtension
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("PUT body: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, req)
		e := api.VMExtension{Name: r.PathValue("ext"), Version: req.Version, Settings: req.Settings, Protected: req.ProtectedSettings != nil}
		if e.Version == "" {
			e.Version = "1.0"
		}
		exts = append(exts, e)
		answer(w, e)
	})
	mux.HandleFunc("DELETE /v1/vms/db/extensions/{ext}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for i, e := range exts {
			if e.Name == r.PathValue("ext") {
				exts = append(exts[:i], exts[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		notFound(w, "VM db has no extension "+r.PathValue("ext"))
	})
	mux.HandleFunc("GET /v1/vms/db", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		answer(w, api.VM{Name: "db", Image: "tiny", CPUs: 1, Memory: 256 << 20, State: "running", Health: "healthy",
			Node: "node-1", Instance: "db-vm-0-abcd", Extensions: exts})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, func() []api.SetVMExtension {
		mu.Lock()
		defer mu.Unlock()
		return append([]api.SetVMExtension(nil), sent...)
	}
}

// TestVMExtensionCommands sets, lists, shows and removes a VM's
// extensions: what each command sends and prints.
func TestVMExtensionCommands(t *testing.T) {
	srv, sent := vmExtensionServer(t)
	dir := t.TempDir()
	settings := filepath.Join(dir, "s.json")
	os.WriteFile(settings, []byte(`{"script": "echo hi", "timestamp": 2}`), 0o600)
	secret := filepath.Join(dir, "p.json")
	os.WriteFile(secret, []byte(`{"commandToExecute": "echo s3cret"}`), 0o600)
	notObject := filepath.Join(dir, "list.json")
	os.WriteFile(notObject, []byte(`["a"]`), 0o600)

	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := weft(t, srv.URL, args...)
		if code != 0 {
			t.Fatalf("weft %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	checkGolden(t, "vm-extension-set.golden", must("vm", "extension", "set", "db", "custom-script", "--version", "1.0",
		"--settings", settings, "--protected-settings", secret))
	want := []api.SetVMExtension{{Version: "1.0", Settings: map[string]any{"script": "echo hi", "timestamp": 2.0},
		ProtectedSettings: map[string]any{"commandToExecute": "echo s3cret"}}}
	if diff := cmp.Diff(want, sent()); diff != "" {
		t.Errorf("the request (-want +got):\n%s", diff)
	}
	checkGolden(t, "vm-extension-list.golden", must("vm", "extension", "list", "db"))
	checkGolden(t, "vm-extension-list.json.golden", must("vm", "extension", "list", "db", "-o", "json"))
	checkGolden(t, "vm-show-extensions.golden", must("vm", "show", "db"))
	if out := must("vm", "extension", "remove", "db", "custom-script"); out != "extension custom-script removed from VM db\n" {
		t.Errorf("weft vm extension remove: %q", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"vm", "extension", "set", "db"}, 2, "NAME"},
		{[]string{"vm", "extension", "set", "db", "x", "--settings", filepath.Join(dir, "missing.json")}, 2, "--settings: open"},
		{[]string{"vm", "extension", "set", "db", "x", "--protected-settings", notObject}, 2, "--protected-settings: " + notObject + " does not hold a JSON object"},
		{[]string{"vm", "extension", "remove", "db", "custom-script"}, 1, "VM db has no extension custom-script"},
		{[]string{"vm", "extension", "list", "nope"}, 1, "no VM named nope"},
	} {
		_, errOut, code := weft(t, srv.URL, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("weft %s: exit %d, %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
	}
	if n := len(sent()); n != 1 {
		t.Errorf("%d PUTs; the refused command lines sent nothing, want 1", n)
	}
}
