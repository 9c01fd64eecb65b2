package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/atomicfile"
)

// askerSource is an instance that asks its metadata service what its
// callers ask it to (/ask), measures it (/bench), and notes SIGTERM in
// $MARK_FILE, so tests see everything from inside the instance.
const askerSource = `package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func ask(method, path, body string) (int, []byte) {
	req, _ := http.NewRequest(method, os.Getenv("WEFT_METADATA")+path, strings.NewReader(body))
	req.Header.Set("Metadata", "true")
	req.Header.Set("Authorization", "Bearer "+os.Getenv("WEFT_METADATA_TOKEN"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return http.StatusBadGateway, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	go func() {
		<-sigs
		if f, err := os.OpenFile(os.Getenv("MARK_FILE"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			f.WriteString("term\n")
			f.Close()
		}
		os.Exit(0)
	}()
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	http.HandleFunc("/ask", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		code, out := ask(r.URL.Query().Get("method"), r.URL.Query().Get("path"), string(body))
		w.WriteHeader(code)
		w.Write(out)
	})
	http.HandleFunc("/bench", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		c, _ := strconv.Atoi(r.URL.Query().Get("c"))
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		start := time.Now()
		for g := 0; g < c; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := g; i < n; i += c {
					t := time.Now()
					if code, _ := ask("GET", "/metadata/instance", ""); code != 200 {
						lat[i] = -1
						continue
					}
					lat[i] = time.Since(t)
				}
			}(g)
		}
		wg.Wait()
		took := time.Since(start)
		slices.Sort(lat)
		if lat[0] < 0 {
			http.Error(w, "a request failed", 500)
			return
		}
		json.NewEncoder(w).Encode(map[string]float64{"rps": float64(n) / took.Seconds(), "p99": float64(lat[n*99/100])})
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("WEFT_PORT_HTTP"), nil)
}
`

// askerAssignment is an instance of the asker, noting what happens to it in markFile.
func askerAssignment(id, markFile string) api.Assignment {
	asg := assignment(id)
	asg.Instance.Tenant, asg.Instance.UpdateDomain, asg.Instance.Version = "acme", 1, 1
	asg.Role.Settings = map[string]string{"MARK_FILE": markFile, "COLOR": "red"}
	return asg
}

// askFrom has the instance listening on port ask its metadata service.
func askFrom(t testing.TB, port int, method, path, body string) (int, []byte) {
	t.Helper()
	u := fmt.Sprintf("http://127.0.0.1:%d/ask?method=%s&path=%s", port, method, url.QueryEscape(path))
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func healthyPort(t testing.TB, f *fakeController, id string) int {
	t.Helper()
	eventually(t, id+" healthy", func() bool { return f.get(id).Health == api.HealthHealthy })
	return f.get(id).Ports["http"]
}

func TestMetadataAnswersEachInstanceAboutItselfOnly(t *testing.T) {
	f, srv := newFakeController(t, goPackage(t, askerSource))
	dataDir := t.TempDir()
	a, cancel, done := startAgent(t, srv.URL, dataDir)
	defer func() { a.StopAll(t.Context()); cancel(); <-done }()
	mark := filepath.Join(t.TempDir(), "mark")
	one, two := askerAssignment("hello-web-0-aaaa", mark), askerAssignment("hello-web-1-bbbb", mark)
	two.Instance.Slot, two.Instance.UpdateDomain = 1, 2
	peers := []api.Peer{{ID: one.Instance.ID, Node: "node-1", UpdateDomain: 1}, {ID: two.Instance.ID, Node: "node-1", UpdateDomain: 2}}
	one.PeersVersion, two.PeersVersion = "1", "1"
	f.mu.Lock()
	f.peers = map[string][]api.Peer{one.Instance.ID: peers, two.Instance.ID: peers}
	f.mu.Unlock()
	f.assign(one, two)

	for _, asg := range []api.Assignment{one, two} {
		port := healthyPort(t, f, asg.Instance.ID)
		code, body := askFrom(t, port, "GET", "/metadata/instance", "")
		if code != http.StatusOK {
			t.Fatalf("%s asked who it is: %d %s", asg.Instance.ID, code, body)
		}
		var md api.InstanceMetadata
		if err := json.Unmarshal(body, &md); err != nil {
			t.Fatal(err)
		}
		want := api.InstanceMetadata{
			ID: asg.Instance.ID, Tenant: "acme", Service: "hello", Role: "web", Node: "node-1", FaultDomain: "node-1",
			UpdateDomain: asg.Instance.UpdateDomain, Version: 1,
			Endpoints: []api.MetadataEndpoint{{Name: "http", Port: port, Public: 8080}},
			Peers:     peers, Settings: asg.Role.Settings,
		}
		if got, _ := json.Marshal(md); string(got) != string(must(json.Marshal(want))) {
			t.Errorf("%s is told\n %s\nwant\n %s", asg.Instance.ID, got, must(json.Marshal(want)))
		}
		// The token is in the instance's environment and its private file only.
		saved := filepath.Join(dataDir, "instances", asg.Instance.ID, assignmentFile)
		fi, err := os.Stat(saved)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want a 0600 file", saved, err, fi.Mode().Perm())
		}
	}

	// Without the instance's token there is no answer, whatever is asked.
	var sa savedAssignment
	if err := atomicfile.ReadJSON(filepath.Join(dataDir, "instances", one.Instance.ID, assignmentFile), &sa); err != nil || sa.Token == "" {
		t.Fatalf("no token kept for %s: %v", one.Instance.ID, err)
	}
	for _, tc := range []struct {
		name, metadata, auth string
		want                 int
	}{
		{"no token", "true", "", http.StatusUnauthorized},
		{"another token", "true", "Bearer " + strings.Repeat("A", 26), http.StatusForbidden},
		{"the token in another scheme", "true", "Basic " + sa.Token, http.StatusUnauthorized},
		{"no Metadata header", "", "Bearer " + sa.Token, http.StatusBadRequest},
	} {
		for _, path := range []string{"/metadata/instance", "/metadata/scheduledevents"} {
			req, _ := http.NewRequest("GET", a.MetadataAddr()+path, nil)
			if tc.metadata != "" {
				req.Header.Set(api.MetadataHeader, tc.metadata)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || strings.Contains(string(body), "hello-web-") {
				t.Errorf("%s, %s: %d %s; want %d and no instance's data", tc.name, path, resp.StatusCode, body, tc.want)
			}
		}
	}
	// Over an instance's own channel (a VM's guest agent port) the channel
	// says who asks, whatever token the request carries.
	guestAsks := func(id string) (int, string) {
		req := httptest.NewRequest("GET", "/metadata/instance", nil)
		req.Header.Set(api.MetadataHeader, "true")
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("A", 26))
		rec := httptest.NewRecorder()
		a.guestMetadataHandler(id).ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := guestAsks(one.Instance.ID); code != http.StatusOK || !strings.Contains(body, `"id":"`+one.Instance.ID+`"`) {
		t.Errorf("%s asking over its channel: %d %s", one.Instance.ID, code, body)
	}
	// A stopped instance's token opens nothing any more, nor its channel.
	f.assign(two)
	eventually(t, one.Instance.ID+" removed", func() bool { return a.instanceByToken(sa.Token) == nil })
	if code, body := guestAsks(one.Instance.ID); code != http.StatusForbidden || strings.Contains(body, `"role"`) {
		t.Errorf("a removed instance's channel: %d %s, want 403", code, body)
	}
	req, _ := http.NewRequest("GET", a.MetadataAddr()+"/metadata/instance", nil)
	req.Header.Set(api.MetadataHeader, "true")
	req.Header.Set("Authorization", "Bearer "+sa.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a removed instance's token: %d, want 403", resp.StatusCode)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestScheduledEventIsShownAcknowledgedAndOnStopRunsBeforeSIGTERM(t *testing.T) {
	f, srv := newFakeController(t, goPackage(t, askerSource))
	a, cancel, done := startAgent(t, srv.URL, t.TempDir())
	defer func() { a.StopAll(t.Context()); cancel(); <-done }()
	mark := filepath.Join(t.TempDir(), "mark")
	asg := askerAssignment("hello-web-0-cccc", mark)
	asg.Role.OnStop = []string{"sh", "-c", `echo "onstop $WEFT_INSTANCE $COLOR" >> "$MARK_FILE"`}
	f.assign(asg)
	port := healthyPort(t, f, asg.Instance.ID)

	ev := &api.ScheduledEvent{ID: "ev1", Type: api.EventRelocate, Instance: asg.Instance.ID, Status: api.EventScheduled,
		NotBefore: time.Now().Add(time.Minute).UTC().Truncate(time.Second)}
	asg.Instance.Scheduled = ev
	f.assign(asg)
	var got api.ScheduledEvents
	eventually(t, "the scheduled event shown to the instance", func() bool {
		code, body := askFrom(t, port, "GET", "/metadata/scheduledevents", "")
		return code == http.StatusOK && json.Unmarshal(body, &got) == nil && len(got.Events) == 1
	})
	if e := got.Events[0]; e.ID != ev.ID || e.Type != api.EventRelocate || !e.NotBefore.Equal(ev.NotBefore) {
		t.Fatalf("the instance sees %+v, want %+v", e, ev)
	}
	// Its acknowledgement goes to the controller, naming this instance.
	code, body := askFrom(t, port, "POST", "/metadata/scheduledevents", `{"eventId":"ev1","action":"acknowledge"}`)
	if code != http.StatusOK || !strings.Contains(string(body), `"acknowledged":true`) {
		t.Fatalf("acknowledge: %d %s", code, body)
	}
	f.mu.Lock()
	acts := f.actions
	f.mu.Unlock()
	if len(acts) != 1 || acts[0] != (api.ScheduledEventAction{Instance: asg.Instance.ID, EventID: "ev1", Action: api.ActionAcknowledge}) {
		t.Fatalf("the controller got %+v", acts)
	}
	if code, body := askFrom(t, port, "POST", "/metadata/scheduledevents", `{"eventId":"nope"}`); code != http.StatusNotFound {
		t.Errorf("an unknown event: %d %s, want 404", code, body)
	}

	asg.Instance.Desired = api.DesiredStopped
	f.assign(asg)
	eventually(t, "stopped", func() bool { return f.get(asg.Instance.ID).State == api.StateStopped })
	data, _ := os.ReadFile(mark)
	if want := "onstop " + asg.Instance.ID + " red\nterm\n"; string(data) != want {
		t.Fatalf("mark file %q, want %q: onStop inside the instance, then SIGTERM", data, want)
	}
	if !f.hasEvent("instance.onstop", asg.Instance.ID) {
		t.Error("no instance.onstop event")
	}
}

func TestLiveSettingsReachARunningInstanceWithoutARestart(t *testing.T) {
	f, srv := newFakeController(t, goPackage(t, askerSource))
	dataDir := t.TempDir()
	a, cancel, done := startAgent(t, srv.URL, dataDir)
	defer func() { a.StopAll(t.Context()); cancel(); <-done }()
	asg := askerAssignment("hello-web-0-dddd", filepath.Join(t.TempDir(), "mark"))
	asg.Role.LiveSettings = true
	f.assign(asg)
	port := healthyPort(t, f, asg.Instance.ID)
	pid := instancePID(t, dataDir, asg.Instance.ID)

	asg.Role.Settings = map[string]string{"MARK_FILE": asg.Role.Settings["MARK_FILE"], "COLOR": "blue"}
	asg.Instance.Version = 2
	f.assign(asg)
	var md api.InstanceMetadata
	eventually(t, "the new settings", func() bool {
		_, body := askFrom(t, port, "GET", "/metadata/instance", "")
		return json.Unmarshal(body, &md) == nil && md.Settings["COLOR"] == "blue"
	})
	_, body := askFrom(t, port, "GET", "/metadata/scheduledevents", "")
	var evs api.ScheduledEvents
	json.Unmarshal(body, &evs)
	if len(evs.Events) != 1 || evs.Events[0].Type != api.EventSettings || evs.Events[0].ID != "settings-2" {
		t.Fatalf("events %s, want one SettingsChanged", body)
	}
	if code, body := askFrom(t, port, "POST", "/metadata/scheduledevents", `{"eventId":"settings-2"}`); code != http.StatusOK {
		t.Fatalf("acknowledge the settings event: %d %s", code, body)
	}
	if _, body := askFrom(t, port, "GET", "/metadata/scheduledevents", ""); strings.Contains(string(body), "settings-2") {
		t.Errorf("acknowledged settings event still listed: %s", body)
	}
	if got := instancePID(t, dataDir, asg.Instance.ID); got != pid || f.get(asg.Instance.ID).Restarts != 0 {
		t.Errorf("the instance restarted (pid %d -> %d, restarts %d)", pid, got, f.get(asg.Instance.ID).Restarts)
	}
}

// BenchmarkMetadata measures the metadata service from inside an
// instance: requests per second and the 99th percentile latency of
// GET /metadata/instance, 4 at a time.
func BenchmarkMetadata(b *testing.B) {
	f, srv := newFakeController(b, goPackage(b, askerSource))
	a, cancel, done := startAgent(b, srv.URL, b.TempDir())
	defer func() { a.StopAll(b.Context()); cancel(); <-done }()
	asg := askerAssignment("hello-web-0-eeee", filepath.Join(b.TempDir(), "mark"))
	f.assign(asg)
	port := healthyPort(b, f, asg.Instance.ID)
	n := max(b.N, 1000)
	b.ResetTimer()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/bench?n=%d&c=4", port, n))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ RPS, P99 float64 }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("bench: %d %v", resp.StatusCode, err)
	}
	b.ReportMetric(r.RPS, "req/s")
	b.ReportMetric(r.P99/1e6, "p99-ms")
}

// TestPeersAreReadWhenTheirVersionMoves: an instance's peers are not in
// its assignment (a role of n instances would send n² peers to its
// nodes); the agent reads them from the controller when the instance
// asks, once per version of them.
func TestPeersAreReadWhenTheirVersionMoves(t *testing.T) {
	f, srv := newFakeController(t, goPackage(t, askerSource))
	a, cancel, done := startAgent(t, srv.URL, t.TempDir())
	defer func() { a.StopAll(t.Context()); cancel(); <-done }()
	one := askerAssignment("hello-web-0-aaaa", filepath.Join(t.TempDir(), "mark"))
	one.PeersVersion = "1"
	first := []api.Peer{{ID: one.Instance.ID, Node: "node-1", State: api.StateRunning, Health: api.HealthHealthy}}
	f.mu.Lock()
	f.peers = map[string][]api.Peer{one.Instance.ID: first}
	f.mu.Unlock()
	f.assign(one)
	port := healthyPort(t, f, one.Instance.ID)
	peersTold := func() []api.Peer {
		code, body := askFrom(t, port, "GET", "/metadata/instance", "")
		var md api.InstanceMetadata
		if err := json.Unmarshal(body, &md); code != http.StatusOK || err != nil {
			t.Fatalf("metadata: %d %s", code, body)
		}
		return md.Peers
	}
	reads := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.peerReads
	}
	for range 3 {
		if got := peersTold(); len(got) != 1 || got[0].Health != api.HealthHealthy {
			t.Fatalf("peers told %+v, want %+v", got, first)
		}
	}
	if n := reads(); n != 1 {
		t.Errorf("the peers were read %d times for three questions at one version, want once", n)
	}

	second := []api.Peer{{ID: one.Instance.ID, Node: "node-1", State: api.StateRunning, Health: api.HealthHealthy},
		{ID: "hello-web-1-bbbb", Node: "node-2", State: api.StateRunning, Health: api.HealthUnhealthy}}
	f.mu.Lock()
	f.peers[one.Instance.ID] = second
	f.mu.Unlock()
	one.PeersVersion = "2"
	f.assign(one)
	eventually(t, "the second version of the peers told", func() bool { return len(peersTold()) == 2 })
	if n := reads(); n != 2 {
		t.Errorf("the peers were read %d times over two versions, want twice", n)
	}
}
