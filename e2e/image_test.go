package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/ociimage"
)

// storageFlags run the server's storage service on free ports.
func storageFlags(t testing.TB) []string {
	return []string{"--no-storage=false",
		"--blob-port", fmt.Sprint(freePort(t)), "--queue-port", fmt.Sprint(freePort(t)), "--table-port", fmt.Sprint(freePort(t))}
}

// TestImageLifecycle imports images the ways users have them, refuses bad
// ones without leaving anything behind, pins deployments to image digests
// and keeps an image in use from being deleted.
func TestImageLifecycle(t *testing.T) {
	parallel(t)
	c := newCluster(t, 0, storageFlags(t)...)
	root := filepath.Join(c.dir, "site")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	writeFile(t, filepath.Join(root, "bin", "server"), "#!/bin/sh\necho hi\n")
	img, err := ociimage.Build(root, api.ContainerImageConfig{Entrypoint: []string{"/bin/server"}}, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(c.dir, "app.tar")
	if err := ociimage.WriteDockerTarball(docker, "example/app:1", img); err != nil {
		t.Fatal(err)
	}
	c.mustWeft("image", "import", "app", docker)
	out, _, _ := c.weft("image", "import", "app", docker)
	if _, errOut, code := c.weft("image", "import", "app", docker); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Errorf("importing over an existing name: exit %d, %q %q", code, errOut, out)
	}
	// The same folder as a single-layer image: its rootfs is stored once.
	_, errOut, code := c.weft("image", "build", "site", "--from-dir", root, "--entrypoint", "/bin/server")
	if code != 0 {
		t.Fatalf("image build: %s", errOut)
	}

	garbage := writeFile(t, filepath.Join(c.dir, "garbage.tar"), "not an image")
	for _, args := range [][]string{
		{"image", "import", "junk", garbage},
		{"image", "import", "Bad Name", docker},
		{"image", "import", "disk", garbage, "--initrd", garbage}, // a raw disk needs --kernel
		{"image", "build", "nothing", "--from-dir", root},         // no entrypoint
	} {
		if _, errOut, code := c.weft(args...); code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("weft %s: exit %d, stderr %q; want a one-line error", strings.Join(args, " "), code, errOut)
		}
	}
	var list []api.Image
	if err := json.Unmarshal([]byte(c.mustWeft("image", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "app" || list[1].Name != "site" || list[0].Type != api.ImageContainer {
		t.Fatalf("images after good and bad imports: %+v", list)
	}

	// A service naming a missing image, or an image of another type, is refused.
	os.MkdirAll(filepath.Join(c.dir, "models"), 0o755)
	model := func(image string) string {
		return writeFile(t, filepath.Join(c.dir, "models", image+".yaml"), fmt.Sprintf(`name: web
roles:
  - name: web
    kind: web
    runtime: container
    image: %s
    instances: 1
    endpoints: [{name: http, port: %d}]
`, image, freePort(t)))
	}
	if _, errOut, code := c.weft("deploy", "-f", model("missing")); code == 0 || !strings.Contains(errOut, "roles[0].image: no image named missing") {
		t.Errorf("deploy with a missing image: exit %d, %q", code, errOut)
	}
	c.mustWeft("deploy", "-f", model("app"))
	svc, err := c.client.Service(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Roles[0].ImageDigest != list[0].Digest {
		t.Errorf("deployment pinned %q, want the image's digest %q", svc.Spec.Roles[0].ImageDigest, list[0].Digest)
	}
	if _, errOut, code := c.weft("image", "delete", "app"); code == 0 || !strings.Contains(errOut, "in use by web/web") {
		t.Errorf("deleting an image in use: exit %d, %q", code, errOut)
	}
	c.mustWeft("service", "delete", "web")
	c.waitFor("service gone", 10*time.Second, func() bool {
		_, err := c.client.Service(t.Context(), "web")
		return err != nil
	})
	c.mustWeft("image", "delete", "app")
	c.mustWeft("image", "delete", "site")
	if out := c.mustWeft("image", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("images after deleting both: %s", out)
	}
	// The server restarted from its data still serves what it acknowledged.
	c.mustWeft("image", "import", "app", docker)
	c.kill9(c.server)
	c.startServer()
	if _, err := c.client.Image(t.Context(), "app"); err != nil {
		t.Errorf("image after the server's kill -9: %v", err)
	}
	os.Remove(garbage)
}
