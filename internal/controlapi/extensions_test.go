package controlapi_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/fabric/fabrictest"
	"github.com/weftcloud/weft/internal/untar/untartest"
)

// TestNodeFetchesTheExtensionsOfItsOwnInstancesOnly: a node may fetch the
// package of an extension one of its instances runs, and gets 404 for
// one none of its instances runs.
func TestNodeFetchesTheExtensionsOfItsOwnInstancesOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl := fabrictest.New(t, fabric.Config{}, true)
	exts := extensions.New(ctl.State, ctl.Controller)
	publish := func(name string) api.Extension {
		t.Helper()
		manifest := `{"name": "` + name + `", "version": "1", "handlers": {"enable": ["true"]}}`
		ext, err := exts.Publish(ctx, api.DefaultTenant, bytes.NewReader(untartest.Gzip(untartest.Tar(untartest.Entry{Name: "extension.json", Body: manifest}))))
		if err != nil {
			t.Fatal(err)
		}
		return ext
	}
	used, unused := publish("used"), publish("unused")
	role, err := ctl.PutPackage(ctx, bytes.NewReader(untartest.Gzip(untartest.Tar(untartest.Entry{Name: "app", Body: "x"}))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.RegisterNode(ctx, api.NodeRegistration{Name: "node-1", Address: "http://127.0.0.1:1", Host: "127.0.0.1",
		Capacity: api.Resources{CPU: 4, Memory: 1 << 30}, Runtimes: []string{api.RuntimeProcess}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Deploy(ctx, api.DefaultTenant, api.ServiceSpec{Name: "svc", Roles: []api.RoleSpec{{Name: "w", Kind: api.KindWorker,
		Runtime: api.RuntimeProcess, Package: role.Digest, Command: []string{"./app"}, Instances: 1,
		Extensions: []api.ExtensionRef{{Name: "used"}}}}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ins := ctl.Instances(ctx, api.DefaultTenant, "svc"); len(ins) == 1 && ins[0].Node == "node-1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the instance was not placed on node-1")
		}
	}
	h := controlapi.New(controlapi.Config{Controller: ctl.Controller, Extensions: exts, Log: slog.New(slog.DiscardHandler)})
	asNode := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(access.WithPrincipal(r.Context(), access.Principal{Role: access.Node, Name: "node-1"})))
	})
	srv := httptest.NewServer(asNode)
	defer srv.Close()
	get := func(digest string) (int, string) {
		resp, err := http.Get(srv.URL + "/v1/packages/" + digest)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(used.Package); code != http.StatusOK {
		t.Errorf("the package of an extension node-1's instance runs: %d %s", code, body)
	}
	if code, body := get(unused.Package); code != http.StatusNotFound || !strings.Contains(body, "node node-1 runs no instance that uses") {
		t.Errorf("the package of an extension no instance of node-1 runs: %d %s, want 404", code, body)
	}
}
