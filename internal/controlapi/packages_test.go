package controlapi_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/fabric/fabrictest"
	"github.com/weftcloud/weft/internal/untar/untartest"
)

// TestUploadRefusesUnsafePackages posts packages to a real controller's
// API: one a node would refuse is answered 400 naming its entry, and not
// stored; a sound one is stored.
func TestUploadRefusesUnsafePackages(t *testing.T) {
	ctl := fabrictest.New(t, fabric.Config{}, false)
	srv := httptest.NewServer(controlapi.New(controlapi.Config{Controller: ctl.Controller, Log: slog.New(slog.DiscardHandler)}))
	defer srv.Close()

	post := func(body []byte) (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/packages", "application/gzip", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for name, tc := range map[string]struct {
		body []byte
		want string
	}{
		"link chain": {untartest.Gzip(untartest.Tar(untartest.LinkChain("host")...)), "a/a/a/d/up: unsafe entry: its path goes through the link a"},
		"climbs out": {untartest.Gzip(untartest.Tar(untartest.Entry{Name: "../evil", Body: "x"})), "../evil: unsafe entry: outside the package"},
		"hard link":  {untartest.Gzip(untartest.Tar(untartest.Entry{Name: "shadow", Type: tar.TypeLink, Link: "/etc/shadow"})), "shadow: unsafe entry: type"},
		"not a gzip": {[]byte("not really a tarball"), "not a gzip'd tar"},
		"cut short":  {untartest.Gzip(untartest.Tar(untartest.Entry{Name: "f", Body: "0123456789"}))[:30], "pkgarchive"},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := post(tc.body)
			var e api.ErrorBody
			json.Unmarshal([]byte(body), &e)
			if code != http.StatusBadRequest || e.Error.Code != api.CodeInvalid || !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("POST /v1/packages = %d %s, want 400 invalid naming %q", code, body, tc.want)
			}
		})
	}
	if left, _ := os.ReadDir(ctl.PackagesDir); len(left) != 0 {
		t.Errorf("refused packages left %d files in the store", len(left))
	}
	if code, body := post(untartest.Gzip(untartest.Tar(untartest.Entry{Name: "run", Type: tar.TypeSymlink, Link: "bin/server"}))); code != http.StatusCreated {
		t.Errorf("a sound package: %d %s", code, body)
	}
}
