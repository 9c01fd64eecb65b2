package conformance

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/weftcloud/weft/internal/storage"
)

// jsSDK is the folder whose node_modules holds the JavaScript Azure SDK
// (@azure/storage-blob), as scripts/deps.sh installs it; "" when node or
// the SDK is not there.
func jsSDK() string {
	dir := os.Getenv("WEFT_AZURE_JS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(cache, "weft-tools", "azure-js")
	}
	if _, err := exec.LookPath("node"); err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@azure", "storage-blob")); err != nil {
		return ""
	}
	return dir
}

// TestBlob_JavaScriptSDK runs testdata/jssdk.js: the operations the Go
// SDK does not expose (Query Blob Contents, deleted containers and
// Restore Container) through the official JavaScript SDK, which reads
// the query's Avro answer with its own reader.
func TestBlob_JavaScriptSDK(t *testing.T) {
	dir := jsSDK()
	if dir == "" {
		t.Skip("node or @azure/storage-blob is not installed (scripts/deps.sh installs it; WEFT_AZURE_JS names another folder)")
	}
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	env.upload(t, cc, "books.csv", booksCSV, nil)
	env.upload(t, cc, "ragged.csv", "a,1\nb\nc,3\n", nil)
	env.containerRetention(t, true, 7).want(t, http.StatusAccepted, "")
	gone := env.container(t, "gone")
	if _, err := gone.Delete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "jssdk.js"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, env.endpoint, storage.DevAccount, storage.DevKey, strconv.Itoa(len(booksCSV)))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the JavaScript SDK: %v\n%s", err, out)
	}
}
