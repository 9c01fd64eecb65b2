package client

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/fabric/fabrictest"
)

// TestListsInPages: the API answers a list in pages of ?limit= after the
// key ?after= names, with a Link to the next; the client follows them to
// the whole list; a service deleted between two pages moves no other
// from one page to the next; bad page parameters are refused.
func TestListsInPages(t *testing.T) {
	ctl := fabrictest.New(t, fabric.Config{}, true)
	srv := httptest.NewServer(controlapi.New(controlapi.Config{Controller: ctl.Controller, Log: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	ctx := context.Background()
	pkg := ctl.EmptyPackage(t)
	var names []string
	for _, name := range []string{"g", "a", "e", "c", "b", "f", "d"} {
		if _, err := ctl.Deploy(ctx, api.DefaultTenant, api.ServiceSpec{Name: name, Roles: []api.RoleSpec{{
			Name: "w", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: pkg, Command: []string{"./w"}, Instances: 0,
		}}}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	slices.Sort(names)

	c := New(srv.URL)
	pageSize = 3
	t.Cleanup(func() { pageSize = 1000 })
	all, err := c.Services(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range all {
		got = append(got, s.Name)
	}
	if !slices.Equal(got, names) {
		t.Errorf("the client's list in pages of 3: %v, want %v", got, names)
	}

	// By hand: the first page, then a service of it deleted, then the rest.
	var first []api.Service
	h, err := c.Do(ctx, "GET", "/v1/services", map[string][]string{"limit": {"3"}}, nil, &first)
	if err != nil {
		t.Fatal(err)
	}
	after, ok := nextAfter(h.Get("Link"))
	if len(first) != 3 || !ok || after != "default/c" {
		t.Fatalf("first page: %d services, Link %q", len(first), h.Get("Link"))
	}
	if _, err := ctl.DeleteService(ctx, api.DefaultTenant, "b", false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(ctl.Services(ctx, api.DefaultTenant)) == len(names) {
		if time.Now().After(deadline) {
			t.Fatal("service b is not deleted after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var second []api.Service
	if _, err := c.Do(ctx, "GET", "/v1/services", map[string][]string{"limit": {"3"}, "after": {after}}, nil, &second); err != nil {
		t.Fatal(err)
	}
	if len(second) != 3 || second[0].Name != "d" {
		t.Errorf("the page after %s once b was deleted starts with %+v, want d", after, second)
	}

	for _, query := range []string{"limit=0", "limit=many", "limit=10001", "after=default/a"} {
		resp, err := http.Get(srv.URL + "/v1/services?" + query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), strings.Split(query, "=")[0]) {
			t.Errorf("?%s: %d %s, want 400 naming it", query, resp.StatusCode, body)
		}
	}
}
