package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage/placement"
)

// placementServer serves GET /v1/storage/config as every server does: the
// placement package's handler over a real state store, which the test
// fills through the same functions the servers call.
func placementServer(t *testing.T) (*httptest.Server, *state.DB) {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(placement.Handler(st, nil))
	t.Cleanup(srv.Close)
	return srv, st
}

func storageMember(name, host string) api.StorageMember {
	return api.StorageMember{Name: name, API: "https://" + host + ":7070",
		Blob: "http://" + host + ":10000", Queue: "http://" + host + ":10001", Table: "http://" + host + ":10002"}
}

func register(t *testing.T, st state.Store, members ...api.StorageMember) {
	t.Helper()
	for _, m := range members {
		if err := placement.Register(context.Background(), st, m); err != nil {
			t.Fatal(err)
		}
	}
}

// choosePrimary runs the leader's reconciler as self until it has written
// the first configuration: self alone, epoch 1.
func choosePrimary(t *testing.T, st state.Store, self string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := &placement.Reconciler{Store: st, Self: self, Probe: func(context.Context, placement.Member) (bool, error) { return true, nil }}
		r.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, ok := placement.Current(st); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the reconciler chose no primary")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOperatorStorage shows a placement at epoch 2 whose primary is not
// the first member by name, with one replica in sync and one not.
func TestOperatorStorage(t *testing.T) {
	srv, st := placementServer(t)
	ctx := context.Background()
	register(t, st, storageMember("s1", "10.0.0.1"), storageMember("s2", "10.0.0.2"), storageMember("s3", "10.0.0.3"))
	choosePrimary(t, st, "s2")
	// s2 restarted (epoch 2, alone) and s3 caught up since; s1 has not.
	if err := placement.Restart(ctx, st, 1, "s2"); err != nil {
		t.Fatal(err)
	}
	if err := placement.Add(ctx, st, 2, "s3"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"operator-storage.golden", []string{"operator", "storage"}},
		{"operator-storage.json.golden", []string{"operator", "storage", "-o", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := weft(t, srv.URL, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, tc.golden, out)
		})
	}

	// The JSON is the API's answer, field for field.
	out, _, _ := weft(t, srv.URL, "operator", "storage", "-o", "json")
	var got api.StoragePlacement
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	cfg, _, _ := placement.Current(st)
	want := api.StoragePlacement{Config: cfg, Members: placement.Members(st)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operator storage -o json (-want +got):\n%s", diff)
	}
}

// Without a primary there is nothing to show: the command fails with one
// line that says why, in either output, rather than print a table that
// looks like a healthy, empty placement.
func TestOperatorStorageWithoutPrimary(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []api.StorageMember
		want    []string // in the error line
	}{
		// What a cluster whose servers all run with --no-storage answers.
		{"no storage", nil, []string{"no server has registered a storage service", "--no-storage"}},
		// Registered, but the leader (without storage of its own) never chooses.
		{"no primary", []api.StorageMember{storageMember("s2", "10.0.0.2"), storageMember("s3", "10.0.0.3")},
			[]string{"no primary chosen yet", "registered: s2, s3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, st := placementServer(t)
			register(t, st, tc.members...)
			for _, output := range []string{"table", "json"} {
				out, errOut, code := weft(t, srv.URL, "operator", "storage", "-o", output)
				if code != 1 || out != "" {
					t.Errorf("-o %s: exit %d, stdout %q; want 1 and nothing", output, code, out)
				}
				if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "weft: storage: ") {
					t.Errorf("-o %s: stderr %q is not one line starting with weft: storage:", output, errOut)
				}
				for _, w := range tc.want {
					if !strings.Contains(errOut, w) {
						t.Errorf("-o %s: stderr %q lacks %q", output, errOut, w)
					}
				}
			}
		})
	}

	// No server to ask is one line too.
	_, errOut, code := weft(t, "http://127.0.0.1:1", "operator", "storage")
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("unreachable controller: exit %d, stderr %q", code, errOut)
	}
}
