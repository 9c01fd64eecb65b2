package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/process"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/shim"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "weft-shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// fakeController is a real HTTP server speaking the node protocol with a
// fixed assignment list the test changes.
type fakeController struct {
	mu       sync.Mutex
	index    uint64
	assigned []api.Assignment
	status   map[string]api.InstanceStatus
	events   []api.Event
	pkg      []byte
	changed  chan struct{}
	ttl      time.Duration // announced in heartbeat replies
	interval time.Duration // told in heartbeat replies
	beats    int           // heartbeats taken
	cut      bool          // heartbeats fail, as from a partitioned node
	hold     time.Duration // the next heartbeat's reply waits this long
	actions  []api.ScheduledEventAction
	// peers are each instance's peers, by ID; peerReads counts the reads.
	peers     map[string][]api.Peer
	peerReads int
}

func newFakeController(t testing.TB, pkg []byte) (*fakeController, *httptest.Server) {
	f := &fakeController{index: 1, status: map[string]api.InstanceStatus{}, pkg: pkg, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.Node{Name: r.PathValue("name")})
	})
	mux.HandleFunc("POST /v1/nodes/{name}/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		var hb api.Heartbeat
		json.NewDecoder(r.Body).Decode(&hb)
		f.mu.Lock()
		if f.cut {
			f.mu.Unlock()
			http.Error(w, `{"error":{"code":"internal","message":"cut off"}}`, http.StatusInternalServerError)
			return
		}
		for _, st := range hb.Instances {
			f.status[st.ID] = st
		}
		f.events = append(f.events, hb.Events...)
		f.beats++
		ttl, interval, hold := f.ttl, f.interval, f.hold
		f.hold = 0
		f.mu.Unlock()
		time.Sleep(hold)
		json.NewEncoder(w).Encode(api.HeartbeatReply{Known: true, State: api.NodeReady, Fence: api.Duration(ttl), Interval: api.Duration(interval)})
	})
	mux.HandleFunc("GET /v1/nodes/{name}/assignments", func(w http.ResponseWriter, r *http.Request) {
		idx, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
		f.mu.Lock()
		ch := f.changed
		cur := f.index
		f.mu.Unlock()
		if idx >= cur {
			select {
			case <-ch:
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(api.Assignments{Index: f.index, Instances: append([]api.Assignment{}, f.assigned...)})
	})
	mux.HandleFunc("GET /v1/packages/{digest}", func(w http.ResponseWriter, r *http.Request) { w.Write(f.pkg) })
	mux.HandleFunc("GET /v1/nodes/{name}/peers/{instance}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.peerReads++
		peers, ok := f.peers[r.PathValue("instance")]
		if !ok {
			http.Error(w, `{"code":"NotFound","message":"not assigned"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(peers)
	})
	mux.HandleFunc("POST /v1/nodes/{name}/scheduledevents", func(w http.ResponseWriter, r *http.Request) {
		var act api.ScheduledEventAction
		json.NewDecoder(r.Body).Decode(&act)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.actions = append(f.actions, act)
		for _, a := range f.assigned {
			if ev := a.Instance.Scheduled; ev != nil && a.Instance.ID == act.Instance && ev.ID == act.EventID {
				acked := *ev
				acked.Acknowledged = true
				json.NewEncoder(w).Encode(acked)
				return
			}
		}
		http.Error(w, `{"error":{"code":"not_found","message":"no such event"}}`, http.StatusNotFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeController) assign(as ...api.Assignment) {
	f.mu.Lock()
	f.assigned = as
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeController) hasEvent(typ, instance string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.events {
		if e.Type == typ && e.Instance == instance {
			return true
		}
	}
	return false
}

func (f *fakeController) get(id string) api.InstanceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status[id]
}

// helloPackage builds a tiny HTTP server and packs it.
func helloPackage(t *testing.T) []byte {
	t.Helper()
	return goPackage(t, `package main
import ("fmt"; "net/http"; "os")
func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	fmt.Println("serving", os.Getenv("WEFT_INSTANCE"), os.Getenv("GREETING"))
	http.ListenAndServe("127.0.0.1:"+os.Getenv("WEFT_PORT_HTTP"), nil)
}`)
}

// goPackage builds a Go program, the source of main.go, as ./hello in a
// package. Each source is built once per test binary: a go build costs
// seconds of CPU.
func goPackage(t testing.TB, mainGo string) []byte {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if pkg, ok := built[mainGo]; ok {
		return bytes.Clone(pkg)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "main.go"), []byte(mainGo), 0o644)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644)
	pkgDir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(pkgDir, "hello"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, out)
	}
	var buf bytes.Buffer
	if err := pkgarchive.Pack(pkgDir, &buf); err != nil {
		t.Fatal(err)
	}
	built[mainGo] = buf.Bytes()
	return bytes.Clone(buf.Bytes())
}

// built holds goPackage's packages by source.
var (
	builtMu sync.Mutex
	built   = map[string][]byte{}
)

func startAgent(t testing.TB, srvURL, dataDir string) (*Agent, context.CancelFunc, chan error) {
	return startAgentEvery(t, srvURL, dataDir, 100*time.Millisecond)
}

// startAgentEvery starts an agent that heartbeats every interval until
// the controller tells it otherwise.
func startAgentEvery(t testing.TB, srvURL, dataDir string, interval time.Duration) (*Agent, context.CancelFunc, chan error) {
	t.Helper()
	d, err := process.New(process.Config{ShimCommand: []string{os.Args[0], "weft-shim"}, CgroupDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Name: "node-1", DataDir: dataDir, HeartbeatInterval: interval, StopGrace: 2 * time.Second,
		Drivers: []driver.Driver{d}}, client.New(srvURL))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, cancel, done
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	// A minute: at the start of make test beside two busy loops (load
	// ~28), a persistent and an ephemeral instance were not both healthy
	// within 20 s.
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func assignment(id string) api.Assignment {
	return api.Assignment{
		Instance: api.Instance{ID: id, Service: "hello", Role: "web", Desired: api.DesiredRunning},
		Role: api.RoleSpec{
			Name: "web", Kind: api.KindWeb, Runtime: api.RuntimeProcess, Package: "sha256:" + strings.Repeat("a", 64),
			Command: []string{"./hello"}, Endpoints: []api.Endpoint{{Name: "http", Port: 8080}},
			Health:   &api.HealthCheck{HTTP: &api.HTTPProbe{Path: "/healthz", Endpoint: "http"}, Interval: api.Duration(100 * time.Millisecond), Timeout: api.Duration(time.Second), Failures: 2},
			Settings: map[string]string{"GREETING": "hi"},
		},
	}
}

func instancePID(t *testing.T, dataDir, id string) int {
	t.Helper()
	var p struct{ Child int }
	data, err := os.ReadFile(filepath.Join(dataDir, "instances", id, "pid.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(data, &p)
	return p.Child
}

func TestAgentRunsHealsAdoptsAndStops(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real program")
	}
	f, srv := newFakeController(t, helloPackage(t))
	dataDir := t.TempDir()
	a, cancel, done := startAgent(t, srv.URL, dataDir)
	defer func() {
		a.StopAll(context.Background())
		cancel()
		<-done
	}()

	f.assign(assignment("hello-web-0-aaaa"))
	eventually(t, "running and healthy", func() bool {
		st := f.get("hello-web-0-aaaa")
		return st.State == api.StateRunning && st.Health == api.HealthHealthy && st.Ports["http"] > 0
	})
	// The instance got its port and settings.
	st := f.get("hello-web-0-aaaa")
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", st.Ports["http"]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, "the greeting in the logs", func() bool {
		rc, err := agentGet(a, "/v1/instances/hello-web-0-aaaa/logs")
		if err != nil {
			return false
		}
		defer rc.Body.Close()
		b, _ := io.ReadAll(rc.Body)
		return strings.Contains(string(b), "serving hello-web-0-aaaa hi")
	})
	// Anyone else, a local user included, is refused: logs and exec.
	for _, path := range []string{"logs", "exec"} {
		for _, auth := range []string{"", "Bearer not-the-token"} {
			req := mustRequest(t, http.MethodGet, a.Addr()+"/v1/instances/hello-web-0-aaaa/logs", "")
			if path == "exec" {
				req = mustRequest(t, http.MethodPost, a.Addr()+"/v1/instances/hello-web-0-aaaa/exec", `{"command":["id"]}`)
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with %q: %s, want 401", path, auth, resp.Status)
			}
		}
	}

	// kill -9: restarted in place, with an event.
	pid := instancePID(t, dataDir, "hello-web-0-aaaa")
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, "restarted and healthy", func() bool {
		st := f.get("hello-web-0-aaaa")
		return st.Restarts == 1 && st.State == api.StateRunning && st.Health == api.HealthHealthy
	})
	if !f.hasEvent("instance.restarted", "hello-web-0-aaaa") {
		t.Error("no instance.restarted event")
	}
	checkMetrics(t, a)

	// A new agent over the same data adopts the running instance.
	pid = instancePID(t, dataDir, "hello-web-0-aaaa")
	cancel()
	<-done
	a, cancel, done = startAgent(t, srv.URL, dataDir)
	time.Sleep(500 * time.Millisecond)
	eventually(t, "adopted and healthy", func() bool {
		st := f.get("hello-web-0-aaaa")
		return st.State == api.StateRunning && st.Health == api.HealthHealthy
	})
	if got := instancePID(t, dataDir, "hello-web-0-aaaa"); got != pid {
		t.Errorf("the restarted agent restarted the instance: pid %d -> %d", pid, got)
	}

	// Unassigned: stopped and removed.
	f.assign()
	eventually(t, "the process gone", func() bool { return syscall.Kill(pid, 0) != nil })
	eventually(t, "the instance dir removed", func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "instances", "hello-web-0-aaaa"))
		return os.IsNotExist(err)
	})
}

// TestAgentFencesPersistentInstances cuts the agent off from its
// controller: after the TTL the controller announced, it kills its
// persistent instance (the controller starts it elsewhere) and keeps the
// ephemeral one until told otherwise; back in touch, it reports why.
func TestAgentFencesPersistentInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real program")
	}
	f, srv := newFakeController(t, helloPackage(t))
	// Long enough that a heartbeat late on a loaded machine fences nothing
	// before the cut; the cut lasts until the fence.
	f.ttl = 2 * time.Second
	dataDir := runPersistent(t, f, srv.URL, assignment("hello-web-1-eeee"))
	kept, fenced := instancePID(t, dataDir, "hello-web-1-eeee"), instancePID(t, dataDir, "hello-web-0-pppp")

	f.mu.Lock()
	f.cut = true
	f.mu.Unlock()
	eventually(t, "the persistent instance killed", func() bool { return syscall.Kill(fenced, 0) != nil })
	if syscall.Kill(kept, 0) != nil {
		t.Error("the ephemeral instance was stopped too")
	}
	f.mu.Lock()
	f.cut = false
	f.mu.Unlock()
	eventually(t, "the fencing reported", func() bool { return f.hasEvent("instance.fenced", "hello-web-0-pppp") })
	// Still assigned here (the controller never declared the node down): it starts again.
	eventually(t, "the persistent instance started again", func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "instances", "hello-web-0-pppp", "pid.json"))
		return err == nil && instancePID(t, dataDir, "hello-web-0-pppp") != fenced
	})
}

// runPersistent starts an agent against the fake controller f at url and
// assigns it a persistent instance, hello-web-0-pppp, beside others; it
// returns the agent's data folder once all run healthy.
func runPersistent(t *testing.T, f *fakeController, url string, others ...api.Assignment) string {
	t.Helper()
	dataDir := t.TempDir()
	a, cancel, done := startAgent(t, url, dataDir)
	t.Cleanup(func() {
		a.StopAll(context.Background())
		cancel()
		<-done
	})
	persistent := assignment("hello-web-0-pppp")
	persistent.Role.Persistence = api.Persistent
	all := append([]api.Assignment{persistent}, others...)
	f.assign(all...)
	eventually(t, "all running and healthy", func() bool {
		for _, as := range all {
			if f.get(as.Instance.ID).Health != api.HealthHealthy {
				return false
			}
		}
		return true
	})
	return dataDir
}

// TestAgentFencesFromWhenTheHeartbeatWasSent: the controller starts its
// clock for a node's persistent instances when it hears a heartbeat, so the
// agent's fence runs from when it sent that heartbeat, not from when the
// reply came: a reply that comes later than the fence time it announces
// fences at once, though every reply after it is prompt.
func TestAgentFencesFromWhenTheHeartbeatWasSent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real program")
	}
	f, srv := newFakeController(t, helloPackage(t))
	f.interval = 100 * time.Millisecond
	dataDir := runPersistent(t, f, srv.URL)
	pid := instancePID(t, dataDir, "hello-web-0-pppp")

	// Until now no reply announced a fence, so nothing is armed; the first
	// that does comes twice its fence time after the heartbeat was sent,
	// and the replies after it every interval.
	f.mu.Lock()
	f.ttl, f.hold = time.Second, 2*time.Second
	f.mu.Unlock()
	eventually(t, "the persistent instance fenced", func() bool { return f.hasEvent("instance.fenced", "hello-web-0-pppp") })
	eventually(t, "its process killed", func() bool { return syscall.Kill(pid, 0) != nil })
}

// scriptPackage packs shell scripts (name -> body) and returns the package
// and its digest.
func scriptPackage(t *testing.T, scripts map[string]string) ([]byte, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := pkgarchive.Pack(dir, &buf); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
}

// TestAgentReportsWhyAnInstanceFails: an instance whose command does not
// exist and one that exits at once are restarted with back-off, and each
// reports its last error and its failed starts in a row; the logs of the
// one that never started say why; the instance folder and its output log
// are private.
func TestAgentReportsWhyAnInstanceFails(t *testing.T) {
	pkg, digest := scriptPackage(t, map[string]string{"crash": "#!/bin/sh\necho boom\nexit 3\n"})
	f, srv := newFakeController(t, pkg)
	dataDir := t.TempDir()
	a, cancel, done := startAgent(t, srv.URL, dataDir)
	defer func() {
		a.StopAll(context.Background())
		cancel()
		<-done
	}()
	asg := func(id string, command ...string) api.Assignment {
		return api.Assignment{
			Instance: api.Instance{ID: id, Service: "svc", Role: "web", Desired: api.DesiredRunning},
			Role:     api.RoleSpec{Name: "web", Kind: api.KindWorker, Runtime: api.RuntimeProcess, Package: digest, Command: command},
		}
	}
	const missing, crashing = "svc-web-0-miss", "svc-web-1-crsh"
	f.assign(asg(missing, "no-such-program-weft"), asg(crashing, "./crash"))
	start := time.Now()
	eventually(t, "both failing "+fmt.Sprint(api.FailingAfter)+" times in a row", func() bool {
		return f.get(missing).FailedStarts >= api.FailingAfter && f.get(crashing).FailedStarts >= api.FailingAfter
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("%d failed starts took %s", api.FailingAfter, took)
	}
	if st := f.get(missing); !strings.HasPrefix(st.LastError, "failed to start: ") || !strings.Contains(st.LastError, `command "no-such-program-weft" not found in PATH`) || st.Restarts < api.FailingAfter-1 {
		t.Errorf("missing command: last error %q after %d restarts", st.LastError, st.Restarts)
	}
	if st := f.get(crashing); st.LastError != "exited with code 3" || st.Restarts < api.FailingAfter-1 {
		t.Errorf("crashing instance: last error %q after %d restarts, want exited with code 3", st.LastError, st.Restarts)
	}
	logs := func(id string) string {
		resp, err := agentGet(a, "/v1/instances/"+id+"/logs")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := logs(missing); !strings.HasPrefix(got, "instance "+missing+" has not started: failed to start: ") || !strings.Contains(got, "not found in PATH") {
		t.Errorf("logs of the instance that never started: %q", got)
	}
	if got := logs(crashing); !strings.Contains(got, "boom") {
		t.Errorf("logs of the crashing instance: %q", got)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dataDir, "instances", crashing):               0o700,
		filepath.Join(dataDir, "instances", crashing, shim.LogFile): 0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %o", path, fi.Mode(), err, want)
		}
	}
}

// agentGet calls the agent's own API as the servers do: with the token
// the agent registered with.
func agentGet(a *Agent, path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, a.Addr()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.apiToken)
	return http.DefaultClient.Do(req)
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestAgentHeartbeatsAtTheIntervalItIsTold: the controller sets how often
// its nodes report (it slows them down as the fleet grows); an agent
// started with an hour's interval reports as often as it is told once
// one heartbeat got through.
func TestAgentHeartbeatsAtTheIntervalItIsTold(t *testing.T) {
	f, srv := newFakeController(t, nil)
	f.mu.Lock()
	f.interval = 20 * time.Millisecond
	f.mu.Unlock()
	a, cancel, done := startAgentEvery(t, srv.URL, t.TempDir(), time.Hour)
	defer func() { cancel(); <-done }()
	eventually(t, "the first heartbeat", func() bool {
		a.changed() // a change reports at once, whatever the interval
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.beats > 0
	})
	eventually(t, "heartbeats at the interval the controller told", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.beats >= 25
	})
}
