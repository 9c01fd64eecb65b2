package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/ociimage"
)

// extensionHandler notes each handler's run in $MARK (a role setting: the
// handlers run with the instance's environment) with the settings file it
// was given, squeezed onto one line.
const extensionHandler = `#!/bin/sh
echo "$1 $WEFT_INSTANCE $(tr -d ' \n' < "$WEFT_EXTENSION_SETTINGS")" >> "$MARK"
echo "ran $1"
`

const helloManifest = `{"name": "hello", "version": "1.0",
 "handlers": {"install": ["./h", "install"], "enable": ["./h", "enable"], "update": ["./h", "update"],
              "disable": ["./h", "disable"], "uninstall": ["./h", "uninstall"]},
 "settings": {"public": {"greeting": {"type": "string", "required": true}},
              "protected": {"token": {"type": "string"}}}}`

// TestExtensionsOnAProcessRole publishes an extension, deploys a process
// role with it and the built-in custom-script, and follows both through
// the real server, agent and CLI: statuses reach success with the
// handlers' output, custom-script fetches a file by a URL with a SAS-like
// signature and reports its script's output, protected settings reach the
// handlers and never come back through the API, a settings change runs
// update in place, a reimage applies everything again from install, and
// removing the extension runs disable then uninstall.
func TestExtensionsOnAProcessRole(t *testing.T) {
	parallel(t)
	c := newCluster(t, 1, storageFlags(t)...)
	blobURL, sig := sharedBlob(t, c, "data-from-blob\n")

	ext := filepath.Join(c.dir, "ext-hello")
	bad := filepath.Join(c.dir, "ext-bad")
	dir := filepath.Join(c.dir, "models", "extdemo")
	for _, d := range []string{ext, bad, filepath.Join(dir, "package")} {
		os.MkdirAll(d, 0o755)
	}
	writeFile(t, filepath.Join(ext, "extension.json"), helloManifest)
	writeFile(t, filepath.Join(ext, "h"), extensionHandler)
	os.Chmod(filepath.Join(ext, "h"), 0o755)
	if out := c.mustWeft("extension", "publish", ext); !strings.Contains(out, "extension hello 1.0 published") {
		t.Fatalf("publish said %q", out)
	}
	writeFile(t, filepath.Join(bad, "extension.json"), `{"name": "bad", "version": "1", "handlers": {"install": ["./h"]}}`)
	if _, errOut, code := c.weft("extension", "publish", bad); code == 0 || !strings.Contains(errOut, "extension.json: handlers.enable: the enable handler is required") {
		t.Errorf("publishing a manifest without enable: exit %d, %q", code, errOut)
	}
	list := c.mustWeft("extension", "list", "-o", "json")
	if !strings.Contains(list, `"name": "hello"`) || !strings.Contains(list, `"name": "custom-script"`) || strings.Contains(list, `"name": "bad"`) {
		t.Errorf("extension list -o json:\n%s", list)
	}

	mark := filepath.Join(c.dir, "mark")
	writeFile(t, filepath.Join(dir, "package", "README"), "the workload is sleep")
	model := func(greeting string, withHello bool) string {
		hello := ""
		if withHello {
			hello = fmt.Sprintf(`
      - name: hello
        settings: {greeting: %s}
        protectedSettings: {token: s3cret}`, greeting)
		}
		return writeFile(t, filepath.Join(dir, "service.yaml"), `name: extdemo
roles:
  - name: w
    kind: worker
    runtime: process
    package: ./package
    command: ["sleep", "1000"]
    instances: 1
    settings: {MARK: `+mark+`}
    extensions:`+hello+`
      - name: custom-script
        settings:
          script: "echo script-ran; cat data.txt"
        protectedSettings:
          fileUris: ["`+blobURL+`"]
          commandToExecute: "sh ./script.sh"
      - name: background-info
`)
	}
	c.mustWeft("deploy", "-f", model("hi", true), "--wait", "--timeout", "30s")
	var in api.Instance
	settled := func(what string, want map[string]string) {
		t.Helper()
		c.waitFor(what, 30*time.Second, func() bool {
			ins := c.instances("extdemo")
			if len(ins) != 1 || len(ins[0].Extensions) != len(want) {
				return false
			}
			in = ins[0]
			for _, st := range in.Extensions {
				if st.Status != api.ExtensionSuccess || want[st.Name] != st.Handler {
					return false
				}
			}
			return true
		})
	}
	settled("the extensions enabled", map[string]string{"hello": "enable", "custom-script": "enable", "background-info": "enable"})
	first := in.ID
	for _, st := range in.Extensions {
		if st.Name == "custom-script" && (!strings.Contains(st.Output, "script-ran\ndata-from-blob") || st.ExitCode != 0) {
			t.Errorf("custom-script's status %+v: want its script's output and exit code 0", st)
		}
		if st.Name == "background-info" && (!strings.Contains(st.Output, "instance: "+first+"\n") || !strings.Contains(st.Output, "size: 0.1 cpu")) {
			t.Errorf("background-info's status %+v: want the instance's identity and size", st)
		}
		if st.Name == "hello" && st.Output != "ran enable\n" {
			t.Errorf("hello's status %+v: want the enable handler's output", st)
		}
	}
	settingsLine := `{"name":"hello","version":"1.0","settings":{"greeting":"hi"},"protectedSettings":{"token":"s3cret"}}`
	if got, want := readFile(t, mark), "install "+first+" "+settingsLine+"\nenable "+first+" "+settingsLine+"\n"; got != want {
		t.Fatalf("the handlers noted:\n%s\nwant install then enable, with the protected setting:\n%s", got, want)
	}

	// Nothing the API shows holds a protected setting.
	ctx := context.Background()
	for _, path := range []string{"/v1/services", "/v1/services/extdemo", "/v1/instances", "/v1/instances/" + first, "/v1/events", "/v1/extensions"} {
		resp, err := c.client.Stream(ctx, "GET", path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, secret := range []string{"s3cret", sig} {
			if strings.Contains(string(body), secret) {
				t.Errorf("GET %s shows the protected %q:\n%s", path, secret, body)
			}
		}
	}

	// New settings: update, in place.
	c.mustWeft("deploy", "-f", model("hello-again", true), "--timeout", "30s")
	settled("hello updated", map[string]string{"hello": "update", "custom-script": "enable", "background-info": "enable"})
	if in.ID != first {
		t.Errorf("a settings change replaced the instance (%s, was %s)", in.ID, first)
	}
	if got := readFile(t, mark); !strings.Contains(got, "update "+first+` {"name":"hello","version":"1.0","settings":{"greeting":"hello-again"}`) {
		t.Errorf("no update with the new settings:\n%s", got)
	}

	// A reimage applies them again from install.
	c.mustWeft("instance", "reimage", first, "--wait")
	c.waitFor("reinstalled", 30*time.Second, func() bool {
		return strings.Count(readFile(t, mark), "install "+first) == 2
	})
	settled("enabled after the reimage", map[string]string{"hello": "enable", "custom-script": "enable", "background-info": "enable"})

	// Removed: disable, then uninstall.
	c.mustWeft("deploy", "-f", model("", false), "--timeout", "30s")
	settled("hello removed", map[string]string{"custom-script": "enable", "background-info": "enable"})
	c.waitFor("disabled and uninstalled", 30*time.Second, func() bool {
		got := readFile(t, mark)
		d, u := strings.LastIndex(got, "disable "+first), strings.LastIndex(got, "uninstall "+first)
		return d >= 0 && u > d
	})
	if in.ID != first {
		t.Errorf("removing an extension replaced the instance (%s, was %s)", in.ID, first)
	}
}

// sharedBlob stores data as a blob data.txt of a new storage account and
// returns its URL with a read-only SAS, and the SAS's signature as the URL
// has it.
func sharedBlob(t *testing.T, c *cluster, data string) (string, string) {
	t.Helper()
	ctx := context.Background()
	acct, err := c.client.CreateStorageAccount(ctx, "extfiles")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.client.StorageAccountKeys(ctx, "extfiles")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := azblob.NewClientFromConnectionString(keys.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(ctx, "files", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.UploadBuffer(ctx, "files", "data.txt", []byte(data), nil); err != nil {
		t.Fatal(err)
	}
	cred, err := azblob.NewSharedKeyCredential("extfiles", keys.Key1)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour),
		Permissions: (&sas.BlobPermissions{Read: true}).String(), ContainerName: "files", BlobName: "data.txt"}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSuffix(acct.Endpoints["blob"], "/") + "/files/data.txt?" + q.Encode()
	// Without the SAS the blob is not public: the SAS is what lets the
	// node read it.
	if resp, err := http.Get(strings.TrimSuffix(acct.Endpoints["blob"], "/") + "/files/data.txt"); err != nil || resp.StatusCode == http.StatusOK {
		t.Fatalf("the blob without its SAS: %v %v", resp, err)
	}
	// The signature as the URL carries it, as a leak would show it.
	for _, kv := range strings.Split(q.Encode(), "&") {
		if sig, ok := strings.CutPrefix(kv, "sig="); ok {
			return url, sig
		}
	}
	t.Fatal("the SAS has no signature")
	return "", ""
}

// TestExtensionsOnAContainerRole runs the same extension, custom-script
// and background-info in a container: the handlers run inside it (runc
// exec) with the extensions folder bound read-only at
// /var/lib/weft/extensions, and the protected setting reaches them.
func TestExtensionsOnAContainerRole(t *testing.T) {
	parallel(t)
	requireRunc(t)
	c := newCluster(t, 1, storageFlags(t)...)
	root := filepath.Join(c.dir, "images", "tools")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs a static /bin/busybox for the image's shell")
	}
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755)
	for _, tool := range []string{"sh", "env", "cat", "tr", "sleep"} {
		os.Symlink("busybox", filepath.Join(root, "bin", tool))
	}
	img, err := ociimage.Build(root, api.ContainerImageConfig{Entrypoint: []string{"/bin/sleep", "1000"}, Env: []string{"PATH=/bin"}}, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociimage.WriteLayout(root+".oci", img); err != nil {
		t.Fatal(err)
	}
	c.mustWeft("image", "import", "tools", root+".oci")

	ext := filepath.Join(c.dir, "ext-hello")
	os.MkdirAll(ext, 0o755)
	writeFile(t, filepath.Join(ext, "extension.json"), helloManifest)
	// Inside the container: no $MARK to write to, so it says it all.
	writeFile(t, filepath.Join(ext, "h"), "#!/bin/sh\necho \"$1 in $PWD $(tr -d ' \\n' < \"$WEFT_EXTENSION_SETTINGS\")\"\n")
	os.Chmod(filepath.Join(ext, "h"), 0o755)
	c.mustWeft("extension", "publish", ext)
	model := writeFile(t, filepath.Join(c.dir, "tools.yaml"), `name: tools
roles:
  - name: w
    kind: worker
    runtime: container
    image: tools
    instances: 1
    extensions:
      - name: hello
        settings: {greeting: hi}
        protectedSettings: {token: s3cret}
      - name: custom-script
        protectedSettings: {commandToExecute: "echo inside-$(cat /etc/hostname 2>/dev/null || echo container)"}
      - name: background-info
      - name: monitor
`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	var in api.Instance
	c.waitFor("the extensions enabled in the container", 60*time.Second, func() bool {
		ins := c.instances("tools")
		if len(ins) != 1 || len(ins[0].Extensions) != 4 {
			return false
		}
		in = ins[0]
		for _, st := range in.Extensions {
			if st.Status != api.ExtensionSuccess || st.Handler != "enable" {
				return false
			}
		}
		return true
	})
	want := map[string]string{
		"hello":           `enable in /var/lib/weft/extensions/hello {"name":"hello","version":"1.0","settings":{"greeting":"hi"},"protectedSettings":{"token":"s3cret"}}`,
		"custom-script":   "inside-",
		"background-info": "instance: " + in.ID,
	}
	for _, st := range in.Extensions {
		if st.Name == "monitor" {
			// The container's cgroup, made by runc, read by the agent.
			if f := st.Figures; f == nil || f.MemoryUsed <= 0 || f.MemoryTotal <= 0 || f.DiskTotal <= 0 {
				t.Errorf("monitor's figures in the container: %+v", f)
			}
			continue
		}
		if !strings.Contains(st.Output, want[st.Name]) {
			t.Errorf("%s's output %q, want it to say %q", st.Name, st.Output, want[st.Name])
		}
	}
	resp, err := c.client.Stream(context.Background(), "GET", "/v1/services/tools", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "s3cret") {
		t.Errorf("the service shows the protected setting:\n%s", body)
	}
}

// TestMonitorOnAProcessRole: the built-in monitor on a process instance
// reports the instance's memory against its limit, its CPUs and the disk
// its folder holds, read from its cgroup and folder on the node, through
// the fabric to weft instance show and weft instances.
func TestMonitorOnAProcessRole(t *testing.T) {
	parallel(t)
	c := newCluster(t, 1)
	dir := filepath.Join(c.dir, "models", "watched")
	os.MkdirAll(filepath.Join(dir, "package"), 0o755)
	// It holds 20 MB in a shell variable (the shell stays: no exec) and
	// writes 3 MB to its folder.
	writeFile(t, filepath.Join(dir, "package", "run.sh"), "#!/bin/sh\nx=$(head -c 20000000 /dev/zero | tr '\\0' a)\nhead -c 3000000 /dev/urandom > blob\nsleep 1000\n")
	os.Chmod(filepath.Join(dir, "package", "run.sh"), 0o755)
	model := writeFile(t, filepath.Join(dir, "service.yaml"), `name: watched
roles:
  - name: w
    kind: worker
    runtime: process
    package: ./package
    command: ["./run.sh"]
    instances: 1
    size: {cpu: 0.5, memory: 96Mi}
    extensions:
      - name: monitor
        settings: {interval: 5}
`)
	c.mustWeft("deploy", "-f", model, "--wait", "--timeout", "60s")
	var f api.GuestFigures
	var id string
	c.waitFor("the monitor's figures with the workload's memory and disk", 60*time.Second, func() bool {
		ins := c.instances("watched")
		if len(ins) != 1 || len(ins[0].Extensions) != 1 || ins[0].Extensions[0].Figures == nil {
			return false
		}
		id, f = ins[0].ID, *ins[0].Extensions[0].Figures
		return f.MemoryUsed >= 16<<20 && f.DiskUsed >= 3000000
	})
	if st := c.instances("watched")[0].Extensions[0]; st.Status != api.ExtensionSuccess || !strings.Contains(st.Message, "sampling every 5s") {
		t.Errorf("monitor's status: %+v", st)
	}
	if f.MemoryTotal != 96<<20 || f.CPUs != 1 || f.Load1 != nil || f.DiskTotal < f.DiskUsed || f.SampledAt.IsZero() {
		t.Errorf("figures %+v: want the 96Mi limit, 1 CPU (half of one, rounded up), no load average, the file system's size", f)
	}
	show := c.mustWeft("instance", "show", id)
	if !strings.Contains(show, "Figures:") || !strings.Contains(show, "of 96Mi") || !strings.Contains(show, "monitor 1.0: success") {
		t.Errorf("weft instance show:\n%s", show)
	}
	if out := c.mustWeft("instances", "watched"); !strings.Contains(out, "/96Mi") {
		t.Errorf("weft instances shows no memory figures:\n%s", out)
	}
}
