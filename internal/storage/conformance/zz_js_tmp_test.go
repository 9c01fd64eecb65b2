package conformance

import (
	"context"
	"net/http"
	"os/exec"
	"testing"

	"github.com/weftcloud/weft/internal/storage"
)

func TestTmpJS(t *testing.T) {
	env := newBlobEnv(t)
	cc := env.container(t, "box")
	env.upload(t, cc, "books.csv", booksCSV, nil)
	env.upload(t, cc, "ragged.csv", "a,1\nb\nc,3\n", nil)
	env.containerRetention(t, true, 7).want(t, http.StatusAccepted, "")
	gone := env.container(t, "gone")
	if _, err := gone.Delete(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("node", "/tmp/blob3-js/check.js", env.endpoint, storage.DevAccount, storage.DevKey).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}
