package placement

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/weftcloud/weft/internal/state"
)

const testLease = 50 * time.Millisecond

// prober is the members' storage as the test says it is: up and serving
// when primary unless set down or idle. It counts the probes each member
// got.
type prober struct {
	mu    sync.Mutex
	down  map[string]bool
	idle  map[string]bool // answers, but does not serve
	calls map[string]int
}

func newProber(down ...string) *prober {
	p := &prober{down: map[string]bool{}, idle: map[string]bool{}, calls: map[string]int{}}
	for _, n := range down {
		p.down[n] = true
	}
	return p
}

func (p *prober) probe(ctx context.Context, m Member) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[m.Name]++
	if p.down[m.Name] {
		return false, errors.New("connection refused")
	}
	return !p.idle[m.Name], nil
}

func (p *prober) set(name string, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down[name] = down
}

func (p *prober) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[name]
}

// logBuffer collects a Reconciler's log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// run starts a Reconciler for self and returns when it started; it is
// stopped at the end of the test, which fails if Run does not return.
func run(t *testing.T, st state.Store, self string, p *prober, log *logBuffer) time.Time {
	t.Helper()
	r := &Reconciler{Store: st, Self: self, Probe: p.probe, Lease: testLease}
	if log != nil {
		r.Log = slog.New(slog.NewTextHandler(log, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started := time.Now()
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return started
}

// waitFor polls cond until it holds, or fails the test after a deadline
// far beyond any lease here.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// readCounter counts the reads of the configuration: a Reconciler's
// passes, when it has no primary to probe.
type readCounter struct {
	*state.DB
	reads atomic.Int64
}

func (s *readCounter) Get(kind, key string) (state.Entry, bool) {
	if kind == Kind && key == configKey {
		s.reads.Add(1)
	}
	return s.DB.Get(kind, key)
}

func configIs(st state.Store, want Config) func() bool {
	return func() bool {
		cfg, _, ok := Current(st)
		return ok && cmp.Equal(cfg, want)
	}
}

// TestReconcilerChoosesFirstPrimary: with no configuration, the leader
// makes itself primary when it is registered; until then, the first
// registered member that answers.
func TestReconcilerChoosesFirstPrimary(t *testing.T) {
	st := &readCounter{DB: newStore(t)}
	register(t, st, "s2")
	p := newProber("s2")
	run(t, st, "s1", p, nil)

	waitFor(t, "5 passes", func() bool { return st.reads.Load() >= 5 })
	if cfg, _, ok := Current(st); ok {
		t.Fatalf("a configuration with no member that answers: %+v", cfg)
	}
	register(t, st, "s1")
	waitFor(t, "s1 to become the first primary", configIs(st, Config{Epoch: 1, Primary: "s1", InSync: []string{"s1"}}))
	waitFor(t, "s1 to be probed", func() bool { return p.count("s1") > 0 })
}

// TestReconcilerChoosesAnotherFirstPrimary: a leader without storage of
// its own makes the first registered member that answers primary.
func TestReconcilerChoosesAnotherFirstPrimary(t *testing.T) {
	st := newStore(t)
	register(t, st, "s2", "s3", "s4")
	run(t, st, "s1", newProber("s2"), nil)
	waitFor(t, "s3 to become the first primary", configIs(st, Config{Epoch: 1, Primary: "s3", InSync: []string{"s3"}}))
}

// TestReconcilerKeepsConfiguration: a configuration that exists is not
// overwritten by the first one, and a primary that answers stays primary.
func TestReconcilerKeepsConfiguration(t *testing.T) {
	st := newStore(t)
	register(t, st, "s1", "s2", "s3")
	cfg := Config{Epoch: 5, Primary: "s2", InSync: []string{"s1", "s2", "s3"}}
	setConfig(t, st, cfg)
	p := newProber()
	run(t, st, "s1", p, nil)

	waitFor(t, "many probes of the primary", func() bool { return p.count("s2") >= 15 }) // 5 leases
	if diff := cmp.Diff(cfg, current(t, st)); diff != "" {
		t.Fatalf("config changed while its primary answered (-want +got):\n%s", diff)
	}
}

// TestReconcilerPromotes: the primary's storage stops answering after it
// answered for a while; the first in-sync member by name that answers
// becomes primary, alone in its set, under the next epoch. s1 answers but
// is not in sync, and s3 is in sync but does not answer.
func TestReconcilerPromotes(t *testing.T) {
	st := newStore(t)
	register(t, st, "s1", "s2", "s3", "s4", "s5")
	setConfig(t, st, Config{Epoch: 3, Primary: "s2", InSync: []string{"s2", "s3", "s4", "s5"}})
	p := newProber("s3")
	run(t, st, "s1", p, nil)

	waitFor(t, "the primary to be probed for 3 leases", func() bool { return p.count("s2") >= 9 })
	if got := current(t, st); got.Epoch != 3 {
		t.Fatalf("promoted while the primary answered: %+v", got)
	}
	p.set("s2", true)
	waitFor(t, "s4 to become primary", configIs(st, Config{Epoch: 4, Primary: "s4", InSync: []string{"s4"}}))
	if p.count("s1") != 0 {
		t.Fatal("s1, not in sync, was probed as a candidate")
	}
	waitFor(t, "the new primary to be probed", func() bool { return p.count("s4") >= 3 })
	if got := current(t, st); got.Epoch != 4 {
		t.Fatalf("config changed again after the promotion: %+v", got)
	}
}

// TestReconcilerReplacesIdlePrimary: a primary that answers its probes but
// does not serve (it lost its lease, the leader still reaches it) is
// replaced as one that does not answer is.
func TestReconcilerReplacesIdlePrimary(t *testing.T) {
	st := newStore(t)
	register(t, st, "s1", "s2", "s3")
	setConfig(t, st, Config{Epoch: 2, Primary: "s2", InSync: []string{"s2", "s3"}})
	p := newProber()
	p.idle["s2"] = true
	run(t, st, "s1", p, nil)
	waitFor(t, "s3 to become primary", configIs(st, Config{Epoch: 3, Primary: "s3", InSync: []string{"s3"}}))
}

// TestReconcilerWaitsOutLease: a new leader whose primary never answers
// promotes only once it has counted 2*Lease of failures itself; it does
// not take "never heard from" for "failed long ago".
func TestReconcilerWaitsOutLease(t *testing.T) {
	st := newStore(t)
	register(t, st, "s1", "s2")
	setConfig(t, st, Config{Epoch: 1, Primary: "s1", InSync: []string{"s1", "s2"}})
	p := newProber("s1")
	started := run(t, st, "s2", p, nil)

	want := Config{Epoch: 2, Primary: "s2", InSync: []string{"s2"}}
	waitFor(t, "s2 to become primary", configIs(st, want))
	// Seen after it happened, so this can only be later than the promotion.
	if elapsed := time.Since(started); elapsed < 2*testLease {
		t.Fatalf("promoted %v after the reconciler started, before 2*Lease (%v)", elapsed, 2*testLease)
	}
}

// TestReconcilerRemovedPrimary: a primary that is no longer a registered
// member is lost, though its storage would answer.
func TestReconcilerRemovedPrimary(t *testing.T) {
	st := newStore(t)
	register(t, st, "s1", "s2", "s3")
	setConfig(t, st, Config{Epoch: 2, Primary: "s2", InSync: []string{"s1", "s2", "s3"}})
	p := newProber()
	run(t, st, "s3", p, nil)

	waitFor(t, "the primary to be probed", func() bool { return p.count("s2") >= 3 })
	if _, err := st.Apply(context.Background(), []state.Op{{Kind: Kind, Key: "member/s2", Delete: true}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "s1 to become primary", configIs(st, Config{Epoch: 3, Primary: "s1", InSync: []string{"s1"}}))
}

// TestReconcilerNoCandidate: when no other in-sync member answers, nothing
// is promoted (not even a member out of sync that answers), the warning is
// logged once, and the first in-sync member to return is promoted.
func TestReconcilerNoCandidate(t *testing.T) {
	st := newStore(t)
	register(t, st, "s1", "s2", "s3")
	cfg := Config{Epoch: 6, Primary: "s2", InSync: []string{"s2", "s3"}}
	setConfig(t, st, cfg)
	p := newProber("s2", "s3")
	var log logBuffer
	run(t, st, "s1", p, &log)

	const warning = "storage unavailable until s2 returns"
	waitFor(t, "the warning", func() bool { return log.count(warning) > 0 })
	n := p.count("s3")
	waitFor(t, "s3 to be probed 10 times more", func() bool { return p.count("s3") >= n+10 })
	if got := log.count(warning); got != 1 {
		t.Fatalf("the warning was logged %d times:\n%s", got, log.buf.String())
	}
	if diff := cmp.Diff(cfg, current(t, st)); diff != "" {
		t.Fatalf("config changed with no in-sync member answering (-want +got):\n%s", diff)
	}
	if p.count("s1") != 0 {
		t.Fatal("s1, not in sync, was probed as a candidate")
	}

	p.set("s3", false)
	waitFor(t, "s3 to become primary", configIs(st, Config{Epoch: 7, Primary: "s3", InSync: []string{"s3"}}))
}
