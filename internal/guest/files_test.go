package guest

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCopyInAndRemove copies a folder (a file larger than one chunk, an
// executable, a secret, a link, a subfolder) into the "guest" and removes it.
func TestCopyInAndRemove(t *testing.T) {
	a := New(newFakeMachine().options(io.Discard))
	c := serve(t, a, false)
	ctx := ctxTimeout(t, 20*time.Second)

	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), fileChunk/16*2+100) // more than two chunks
	os.WriteFile(filepath.Join(src, "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "h"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.WriteFile(filepath.Join(src, "empty"), nil, 0o644)
	os.Mkdir(filepath.Join(src, "sub"), 0o750)
	os.WriteFile(filepath.Join(src, "sub", "secret"), []byte("s3cret"), 0o600)
	os.Symlink("sub/secret", filepath.Join(src, "link"))

	dst := filepath.Join(t.TempDir(), "var", "ext", "hello")
	// What the destination held of the same name is replaced.
	os.MkdirAll(dst, 0o755)
	os.WriteFile(filepath.Join(dst, "big"), []byte("older and different"), 0o666)
	if err := c.CopyIn(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct {
		data string
		mode os.FileMode
	}{
		"big": {string(big), 0o644}, "h": {"#!/bin/sh\necho hi\n", 0o755}, "empty": {"", 0o644},
		"sub/secret": {"s3cret", 0o600},
	} {
		p := filepath.Join(dst, name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.data {
			t.Errorf("%s: %d bytes, want %d", name, len(got), len(want.data))
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != want.mode {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want.mode)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dst, "sub")); !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("sub: %v", fi.Mode())
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "sub/secret" {
		t.Errorf("link: %q, %v", l, err)
	}
	// One file alone; the folders made on the way are root's alone.
	one := filepath.Join(t.TempDir(), "new", "h2")
	if err := c.CopyIn(ctx, filepath.Join(src, "h"), one); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(one); err != nil {
		t.Error(err)
	}
	if fi, _ := os.Stat(filepath.Dir(one)); fi.Mode().Perm() != 0o700 {
		t.Errorf("a parent folder made on the way: mode %v, want 0700", fi.Mode().Perm())
	}

	if err := c.Remove(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("after Remove: %v", err)
	}
	if err := c.Remove(ctx, dst); err != nil {
		t.Errorf("removing what is gone: %v", err)
	}
	for _, bad := range []string{"relative/path", "/a/../b", "/"} {
		if err := c.Remove(ctx, bad); err == nil || !strings.Contains(err.Error(), "not a clean absolute path") {
			t.Errorf("Remove(%q): %v", bad, err)
		}
	}
}

// TestMetadataThroughThePort asks the guest's metadata service: the
// request reaches the host's handler over the port, with its path,
// headers and body, and the answer comes back; exec and the workload find
// the service's address in WEFT_METADATA.
func TestMetadataThroughThePort(t *testing.T) {
	opts := newFakeMachine().options(io.Discard)
	opts.MetadataListen = "127.0.0.1:0"
	a := New(opts)
	ctx := ctxTimeout(t, 20*time.Second)
	a.listenMetadata(ctx)
	if a.mdURL == "" {
		t.Fatal("the metadata service does not listen")
	}

	// No connection yet: the host cannot be reached.
	if code, _ := metadataGet(t, a.mdURL+"/metadata/instance"); code != http.StatusServiceUnavailable {
		t.Errorf("before the host connects: %d, want 503", code)
	}

	c := serve(t, a, false)
	if _, err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	// Connected, with no handler: 404.
	if code, _ := metadataGet(t, a.mdURL+"/metadata/instance"); code != http.StatusNotFound {
		t.Errorf("with no handler on the host: %d, want 404", code)
	}
	c.ServeGuest(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" metadata="+r.Header.Get("Metadata")+" body="+string(body))
	}))
	code, body := metadataGet(t, a.mdURL+"/metadata/instance?format=json")
	if code != http.StatusTeapot || body != "GET /metadata/instance?format=json metadata=true body=" {
		t.Errorf("answer: %d %q", code, body)
	}

	var out bytes.Buffer
	if _, err := c.Exec(ctx, []string{"sh", "-c", "echo $WEFT_METADATA"}, map[string]string{"WEFT_METADATA": "http://host:1"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != a.mdURL {
		t.Errorf("exec's WEFT_METADATA is %q, want the guest's own %q", got, a.mdURL)
	}
}

func metadataGet(t *testing.T, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Metadata", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
