package extensions_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/extensions"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/fabric/fabrictest"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/untar/untartest"
)

// newStore is an extension store over a real state database and the
// fabric's real package store.
func newStore(t *testing.T) (*extensions.Store, string) {
	t.Helper()
	ctl := fabrictest.New(t, fabric.Config{}, false)
	return extensions.New(ctl.State, ctl.Controller), ctl.PackagesDir
}

func archive(manifest string, more ...untartest.Entry) *strings.Reader {
	entries := append([]untartest.Entry{{Name: "extension.json", Body: manifest}}, more...)
	return strings.NewReader(string(untartest.Gzip(untartest.Tar(entries...))))
}

const hello = `{"name": "hello", "version": "1.2", "handlers": {"install": ["./install.sh"], "enable": ["./enable.sh"]},
 "settings": {"public": {"greeting": {"type": "string", "required": true}}, "protected": {"token": {"type": "string"}}}}`

func TestPublishChecksTheManifest(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		body *strings.Reader
		want string
	}{
		"no manifest":      {strings.NewReader(string(untartest.Gzip(untartest.Tar(untartest.Entry{Name: "enable.sh", Body: "x"})))), "no extension.json at its root"},
		"not json":         {archive("name: hello"), "extension.json: invalid character"},
		"unknown field":    {archive(`{"name": "hello", "version": "1", "handlers": {"enable": ["x"]}, "author": "me"}`), `unknown field "author"`},
		"no enable":        {archive(`{"name": "hello", "version": "1", "handlers": {"install": ["x"]}}`), "extension.json: handlers.enable: the enable handler is required"},
		"bad version":      {archive(`{"name": "hello", "version": "1.x", "handlers": {"enable": ["x"]}}`), `extension.json: version: "1.x" is not a version`},
		"bad name":         {archive(`{"name": "Hello", "version": "1", "handlers": {"enable": ["x"]}}`), `extension.json: name: "Hello" is not a name`},
		"bad setting type": {archive(`{"name": "hello", "version": "1", "handlers": {"enable": ["x"]}, "settings": {"public": {"n": {"type": "int"}}}}`), `settings.public.n.type: "int" is not one of string, number`},
		"unsafe archive":   {archive(hello, untartest.Entry{Name: "../evil", Body: "x"}), "../evil: unsafe entry: outside the package"},
		"hard link":        {archive(hello, untartest.Entry{Name: "shadow", Type: tar.TypeLink, Link: "/etc/shadow"}), "shadow: unsafe entry"},
		"built-in's name":  {archive(`{"name": "custom-script", "version": "9", "handlers": {"enable": ["x"]}}`), "custom-script is a built-in extension's name"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Publish(ctx, "acme", tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("publish: %v, want an error naming %q", err, tc.want)
			}
			want := api.ErrInvalid
			if name == "built-in's name" {
				want = api.ErrConflict
			}
			if !errors.Is(err, want) {
				t.Errorf("publish: %v is not %v", err, want.Code)
			}
		})
	}
	for _, e := range s.List(api.AllTenants) {
		if !e.BuiltIn {
			t.Errorf("after refused publishes the list has %s %s, want the built-in ones only", e.Name, e.Version)
		}
	}
}

func TestPublishListLookup(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	ext, err := s.Publish(ctx, "acme", archive(hello, untartest.Entry{Name: "enable.sh", Mode: 0o755, Body: "#!/bin/sh\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if ext.Name != "hello" || ext.Version != "1.2" || ext.Tenant != "acme" || !pkgstore.ValidDigest(ext.Package) {
		t.Errorf("published %+v", ext)
	}
	if _, err := s.Publish(ctx, "acme", archive(hello)); !errors.Is(err, api.ErrConflict) {
		t.Errorf("the same version again: %v, want a conflict", err)
	}
	newer := strings.Replace(hello, `"1.2"`, `"1.10"`, 1)
	if _, err := s.Publish(ctx, "acme", archive(newer)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("acme", "hello", ""); err != nil || got.Version != "1.10" {
		t.Errorf("the newest hello: %+v %v, want 1.10 (versions compare as numbers)", got, err)
	}
	if got, err := s.Get("acme", "hello", "1.2"); err != nil || got.Version != "1.2" {
		t.Errorf("hello 1.2: %+v %v", got, err)
	}
	// Another tenant sees neither, the default tenant's serve everyone.
	if _, err := s.Get("globex", "hello", ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("acme's extension as globex: %v, want not found", err)
	}
	for _, e := range s.List("globex") {
		if e.Tenant == "acme" {
			t.Errorf("globex's list shows acme's %s %s", e.Name, e.Version)
		}
	}
	if _, err := s.Publish(ctx, api.DefaultTenant, archive(strings.Replace(hello, `"hello"`, `"shared"`, 1))); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("globex", "shared", ""); err != nil || got.Tenant != api.DefaultTenant {
		t.Errorf("the default tenant's extension as globex: %+v %v", got, err)
	}
	if got, err := s.Get("globex", extensions.CustomScript, ""); err != nil || !got.BuiltIn {
		t.Errorf("the built-in custom-script: %+v %v", got, err)
	}
}

func TestSettingsAreCheckedAgainstTheSchema(t *testing.T) {
	m, err := api.ParseExtensionManifest([]byte(hello))
	if err != nil {
		t.Fatal(err)
	}
	err = m.CheckSettings("roles[0].extensions[0]", api.ExtensionRef{Name: "hello",
		Settings: map[string]any{"greting": "hi"}, ProtectedSettings: map[string]any{"token": 3.0}})
	for _, want := range []string{
		"roles[0].extensions[0].settings.greting: the extension declares no such setting (it has: greeting)",
		"roles[0].extensions[0].settings.greeting: is required by the extension",
		"roles[0].extensions[0].protectedSettings.token: is a number; the extension wants a string",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckSettings: %v, want it to say %q", err, want)
		}
	}
}

func TestSealedSettingsOpenOnlyWhereTheyBelong(t *testing.T) {
	key, err := extensions.ServerKey("", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := extensions.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	here := extensions.Binding("acme", "web", "front", "hello")
	sealed, err := s.Seal(here, map[string]any{"token": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "s3cret") {
		t.Fatalf("sealed text %q shows the secret", sealed)
	}
	if again, _ := s.Seal(here, map[string]any{"token": "s3cret"}); again != sealed {
		t.Errorf("the same settings sealed twice differ: a redeploy would look like a change")
	}
	if got, err := s.Unseal(here, sealed); err != nil || got["token"] != "s3cret" {
		t.Errorf("unseal: %v %v", got, err)
	}
	if _, err := s.Unseal(extensions.Binding("globex", "web", "front", "hello"), sealed); !errors.Is(err, extensions.ErrUnseal) {
		t.Errorf("unsealed for another tenant: %v, want ErrUnseal", err)
	}
	otherKey, _ := extensions.ServerKey("", t.TempDir())
	other, _ := extensions.NewSealer(otherKey)
	if _, err := other.Unseal(here, sealed); !errors.Is(err, extensions.ErrUnseal) {
		t.Errorf("unsealed with another server's key: %v, want ErrUnseal", err)
	}
}

func TestServerKeyIsKeptPrivate(t *testing.T) {
	dir := t.TempDir()
	k1, err := extensions.ServerKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := extensions.ServerKey("", dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("the key changed between starts: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, extensions.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v, want 0600", fi.Mode(), err)
	}
}
