package lb

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestBalancesAcrossBackends(t *testing.T) {
	b := newBalancer(t)
	var bes []Backend
	for _, n := range []string{"a", "b", "c"} {
		bes = append(bes, newBackend(t, n).Backend)
	}
	url := publish(t, b, "s/web/http", bes...)
	seen := map[string]int{}
	for range 30 {
		code, body := get(t, url+"/")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		seen[body]++
	}
	// Sequential requests leave every backend equally idle: they take turns.
	for _, n := range []string{"a", "b", "c"} {
		if seen[n] != 10 {
			t.Errorf("answers by backend: %v, want 10 each", seen)
			break
		}
	}
	st := b.Stats()
	if len(st) != 1 || st[0].Requests != 30 || st[0].Failures != 0 || st[0].Key != "s/web/http" {
		t.Errorf("stats: %+v", st)
	}
}

func TestBusyBackendIsAvoided(t *testing.T) {
	b := newBalancer(t)
	x, y, z := newBackend(t, "x"), newBackend(t, "y"), newBackend(t, "z")
	url := publish(t, b, "s/web/http", x.Backend, y.Backend, z.Backend)
	done := make(chan struct{})
	go func() {
		defer close(done)
		get(t, url+"/block")
	}()
	var busy *testBackend
	select {
	case <-x.entered:
		busy = x
	case <-y.entered:
		busy = y
	case <-z.entered:
		busy = z
	}
	for range 12 {
		if _, body := get(t, url+"/"); body == busy.ID {
			t.Fatalf("a request went to %s, which has one in flight while the others have none", body)
		}
	}
	close(busy.unblock)
	<-done
}

func TestUnreachableBackendIsRetried(t *testing.T) {
	b := newBalancer(t)
	good := newBackend(t, "good")
	dead := Backend{ID: "dead", Addr: deadAddr(t)}
	url := publish(t, b, "s/web/http", dead, good.Backend)
	payload := strings.Repeat("weft ", 10000)
	for i := range 10 {
		if code, body := get(t, url+"/"); code != http.StatusOK || body != "good" {
			t.Fatalf("GET %d: %d %q", i, code, body)
		}
		// A failed dial sent nothing, so a request with a body is safe to
		// send again, and must arrive whole.
		if code, body := post(t, url+"/echo", payload); code != http.StatusOK || body != payload {
			t.Fatalf("POST %d: %d, %d bytes back of %d", i, code, len(body), len(payload))
		}
	}
	if st := b.Stats(); st[0].Failures != 0 {
		t.Errorf("%d failures counted", st[0].Failures)
	}
	// The dead backend rests instead of costing every request a dial.
	b.bmu.Lock()
	deadBE, goodBE := b.backends["dead"], b.backends["good"]
	b.bmu.Unlock()
	if deadBE.restUntil.Load() == 0 || goodBE.restUntil.Load() != 0 {
		t.Error("the unreachable backend is not resting, or the good one is")
	}
}

func TestBalancerAnswersWhenNoBackendCan(t *testing.T) {
	tests := []struct {
		name     string
		backends func(t *testing.T) []Backend
		code     int
		text     string
	}{
		{"no backend", func(*testing.T) []Backend { return nil }, http.StatusServiceUnavailable, "no healthy instance of s/web/http"},
		{"all unreachable", func(t *testing.T) []Backend {
			return []Backend{{ID: "d1", Addr: deadAddr(t)}, {ID: "d2", Addr: deadAddr(t)}}
		}, http.StatusBadGateway, "no instance of s/web/http could answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancer(t)
			url := publish(t, b, "s/web/http", tt.backends(t)...)
			code, body := get(t, url+"/")
			if code != tt.code || !strings.Contains(body, tt.text) {
				t.Errorf("got %d %q, want %d %q", code, body, tt.code, tt.text)
			}
			if strings.Contains(body, "127.0.0.1") {
				t.Errorf("the answer shows a backend address: %q", body)
			}
			if st := b.Stats(); st[0].Failures != 1 {
				t.Errorf("failures = %d, want 1", st[0].Failures)
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	b := newBalancer(t)
	be := newBackend(t, "a")
	url := publish(t, b, "s/web/http", be.Backend)
	req, _ := http.NewRequest(http.MethodGet, url+"/headers", nil)
	req.Host = "hello.example"
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // a client's claim, not to be trusted
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Host":              "hello.example",
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "hello.example",
		"X-Forwarded-Proto": "http",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
}

func TestUpdate(t *testing.T) {
	b := newBalancer(t)
	be := newBackend(t, "a")
	p1, p2 := freePort(t), freePort(t)
	url := func(p int) string { return fmt.Sprintf("http://127.0.0.1:%d/", p) }

	if err := b.Update([]Endpoint{{Key: "one", Port: p1, Backends: []Backend{be.Backend}}, {Key: "two", Port: p2, Backends: []Backend{be.Backend}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{p1, p2} {
		if code, _ := get(t, url(p)); code != http.StatusOK {
			t.Fatalf("port %d: %d", p, code)
		}
	}
	// Dropping p2 frees it at once.
	if err := b.Update([]Endpoint{{Key: "one", Port: p1, Backends: []Backend{be.Backend}}}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p2))
	if err != nil {
		t.Fatalf("port still held after its endpoint was removed: %v", err)
	}
	// Now p2 is someone else's: that endpoint fails, the others apply.
	p3 := freePort(t)
	err = b.Update([]Endpoint{
		{Key: "one", Port: p1},
		{Key: "taken", Port: p2, Backends: []Backend{be.Backend}},
		{Key: "three", Port: p3, Backends: []Backend{be.Backend}},
		{Key: "dup", Port: p3},
		{Key: "odd", Protocol: "udp", Port: freePort(t)},
		{Key: "zero", Port: 0},
	})
	ln.Close()
	for _, want := range []string{"taken", "dup", "odd", "zero"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Update error %v does not name %q", err, want)
		}
	}
	if code, _ := get(t, url(p3)); code != http.StatusOK {
		t.Errorf("the bindable endpoint was not applied: %d", code)
	}
	if code, _ := get(t, url(p1)); code != http.StatusServiceUnavailable {
		t.Errorf("endpoint emptied by Update answers %d, want 503", code)
	}
	// The same port can change protocol.
	if err := b.Update([]Endpoint{{Key: "one", Protocol: "tcp", Port: p1}}); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); len(st) != 1 || st[0].Protocol != "tcp" || st[0].Port != p1 {
		t.Errorf("stats after the protocol change: %+v", st)
	}
	// After Close every port is free and Update refuses.
	b.Close()
	ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p1))
	if err != nil {
		t.Fatalf("port held after Close: %v", err)
	}
	ln.Close()
	if err := b.Update([]Endpoint{{Key: "one", Port: p1}}); err == nil {
		t.Error("Update after Close succeeded")
	}
}

func TestRemovedPortFinishesRequestsInFlight(t *testing.T) {
	b := newBalancer(t)
	be := newBackend(t, "slow")
	url := publish(t, b, "s/web/http", be.Backend)
	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		code, body := get(t, url+"/block")
		done <- answer{code, body}
	}()
	<-be.entered
	if err := b.Update(nil); err != nil {
		t.Fatal(err)
	}
	port := strings.TrimPrefix(url, "http://")
	ln, err := net.Listen("tcp", port)
	if err != nil {
		t.Fatalf("port held while a request finishes: %v", err)
	}
	ln.Close()
	close(be.unblock)
	if a := <-done; a.code != http.StatusOK || a.body != "slow" {
		t.Errorf("request in flight when its port was removed: %d %q", a.code, a.body)
	}
}

// TestUpgradedConnection checks that a 101 answer (WebSocket) becomes a
// two-way connection that counts as in flight until it closes.
func TestUpgradedConnection(t *testing.T) {
	b := newBalancer(t)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			rw.Flush()
			io.Copy(c, rw)
		})}
		srv.Serve(echo)
	}()
	url := publish(t, b, "s/web/ws", Backend{ID: "ws", Addr: echo.Addr().String()})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, msg := range []string{"ping\n", "pong\n"} {
		fmt.Fprint(c, msg)
		if got, err := br.ReadString('\n'); got != msg {
			t.Fatalf("echo over the upgraded connection: %q %v", got, err)
		}
	}
	if n := active(b, "ws"); n != 1 {
		t.Errorf("upgraded connection counts %d in flight, want 1", n)
	}
	c.Close()
	if err := b.Drain(t.Context(), "ws"); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRequestsAndUpdates(t *testing.T) {
	b := newBalancer(t)
	x, y := newBackend(t, "x"), newBackend(t, "y")
	port := freePort(t)
	sets := [][]Backend{{x.Backend}, {y.Backend}, {x.Backend, y.Backend}}
	if err := b.Update([]Endpoint{{Key: "k", Port: port, Backends: sets[2]}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
				if err != nil {
					errs <- err.Error()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- resp.Status
				}
			}
		}()
	}
	for i := range 200 {
		if err := b.Update([]Endpoint{{Key: "k", Port: port, Backends: sets[i%3]}}); err != nil {
			t.Fatal(err)
		}
		b.Stats()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request failed while the backend set changed: %s", e)
	}
}
