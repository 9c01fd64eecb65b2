package placement

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

func newStore(t *testing.T) *state.DB {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func memberNamed(name string) Member {
	return Member{
		Name: name, API: "https://" + name + ":7070",
		Blob: "http://" + name + ":10000", Queue: "http://" + name + ":10001", Table: "http://" + name + ":10002",
	}
}

func register(t *testing.T, st state.Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := Register(context.Background(), st, memberNamed(n)); err != nil {
			t.Fatal(err)
		}
	}
}

// setConfig writes cfg over whatever configuration there is.
func setConfig(t *testing.T, st state.Store, cfg Config) {
	t.Helper()
	_, rev, _ := Current(st)
	if err := put(context.Background(), st, cfg, rev); err != nil {
		t.Fatal(err)
	}
}

func current(t *testing.T, st state.Store) Config {
	t.Helper()
	cfg, _, ok := Current(st)
	if !ok {
		t.Fatal("no configuration")
	}
	return cfg
}

// TestRegister: a member is recorded once; registering the same record
// again writes nothing, a changed one replaces it; bad names are refused.
func TestRegister(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	register(t, st, "s2", "s1")
	want := []Member{memberNamed("s1"), memberNamed("s2")}
	if diff := cmp.Diff(want, Members(st)); diff != "" {
		t.Fatalf("members (-want +got):\n%s", diff)
	}

	index := st.Index()
	register(t, st, "s1")
	if st.Index() != index {
		t.Fatalf("registering an equal record wrote to the store (index %d -> %d)", index, st.Index())
	}

	moved := memberNamed("s1")
	moved.Blob = "http://10.0.0.9:10000"
	if err := Register(ctx, st, moved); err != nil {
		t.Fatal(err)
	}
	if got := Members(st)[0]; got != moved {
		t.Fatalf("after re-registering: %+v, want %+v", got, moved)
	}

	for _, name := range []string{"", "a/b"} {
		if err := Register(ctx, st, Member{Name: name}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Register(%q) = %v, want an invalid error", name, err)
		}
	}
	if _, _, ok := Current(st); ok {
		t.Fatal("registering chose a configuration")
	}
}

// TestAddDrop changes the in-sync set of epoch 2 (primary s2, in sync s1
// s2 s3; s4 registered, s5 not).
func TestAddDrop(t *testing.T) {
	start := Config{Epoch: 2, Primary: "s2", InSync: []string{"s1", "s2", "s3"}}
	tests := []struct {
		name    string
		noCfg   bool // no configuration at all
		add     bool
		epoch   uint64
		member  string
		want    []string // the in-sync set after
		wantErr error
	}{
		{name: "drop", epoch: 2, member: "s3", want: []string{"s1", "s2"}},
		{name: "drop first", epoch: 2, member: "s1", want: []string{"s2", "s3"}},
		{name: "drop absent", epoch: 2, member: "s4", want: start.InSync},
		{name: "drop primary", epoch: 2, member: "s2", want: start.InSync, wantErr: api.ErrInvalid},
		{name: "drop stale", epoch: 1, member: "s3", want: start.InSync, wantErr: ErrStaleEpoch},
		{name: "drop future", epoch: 3, member: "s3", want: start.InSync, wantErr: ErrStaleEpoch},
		{name: "drop unconfigured", noCfg: true, epoch: 1, member: "s3", wantErr: ErrStaleEpoch},
		{name: "add", add: true, epoch: 2, member: "s4", want: []string{"s1", "s2", "s3", "s4"}},
		{name: "add present", add: true, epoch: 2, member: "s3", want: start.InSync},
		{name: "add unregistered", add: true, epoch: 2, member: "s5", want: start.InSync, wantErr: api.ErrNotFound},
		{name: "add stale", add: true, epoch: 1, member: "s4", want: start.InSync, wantErr: ErrStaleEpoch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			register(t, st, "s1", "s2", "s3", "s4")
			if !tt.noCfg {
				setConfig(t, st, start)
			}
			index := st.Index()
			f := Drop
			if tt.add {
				f = Add
			}
			err := f(context.Background(), st, tt.epoch, tt.member)
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if tt.noCfg {
				if _, _, ok := Current(st); ok {
					t.Fatal("a configuration appeared")
				}
				return
			}
			got := current(t, st)
			want := Config{Epoch: 2, Primary: "s2", InSync: tt.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("config (-want +got):\n%s", diff)
			}
			if changed := st.Index() != index; changed != !cmp.Equal(tt.want, start.InSync) {
				t.Fatalf("store written: %v", changed)
			}
		})
	}
}

// racingStore runs before once, just ahead of the first batch that
// writes the configuration: another writer changing it between a read and
// a compare-and-set.
type racingStore struct {
	*state.DB
	before func()
}

func (s *racingStore) Apply(ctx context.Context, ops []state.Op) (uint64, error) {
	if f := s.before; f != nil && len(ops) > 0 && ops[0].Kind == Kind && ops[0].Key == configKey {
		s.before = nil
		f()
	}
	return s.DB.Apply(ctx, ops)
}

// TestDropAfterConflict: a Drop whose compare-and-set loses to another
// change of the same epoch is made again on top of it; one that loses to
// a new epoch is stale.
func TestDropAfterConflict(t *testing.T) {
	ctx := context.Background()
	start := Config{Epoch: 2, Primary: "s2", InSync: []string{"s1", "s2", "s3"}}

	db := newStore(t)
	register(t, db, "s1", "s2", "s3", "s4")
	setConfig(t, db, start)
	st := &racingStore{DB: db, before: func() {
		if err := Add(ctx, db, 2, "s4"); err != nil {
			t.Error(err)
		}
	}}
	if err := Drop(ctx, st, 2, "s1"); err != nil {
		t.Fatal(err)
	}
	want := Config{Epoch: 2, Primary: "s2", InSync: []string{"s2", "s3", "s4"}}
	if diff := cmp.Diff(want, current(t, db)); diff != "" {
		t.Fatalf("config (-want +got):\n%s", diff)
	}

	promoted := Config{Epoch: 3, Primary: "s3", InSync: []string{"s3"}}
	st.before = func() { setConfig(t, db, promoted) }
	if err := Drop(ctx, st, 2, "s4"); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("drop after a promotion: %v, want ErrStaleEpoch", err)
	}
	if diff := cmp.Diff(promoted, current(t, db)); diff != "" {
		t.Fatalf("config (-want +got):\n%s", diff)
	}
}

// TestRestart: the primary of the current epoch starts a new one alone in
// its in-sync set; anyone else, or an old epoch, is refused.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	db := newStore(t)
	register(t, db, "s1", "s2")
	setConfig(t, db, Config{Epoch: 4, Primary: "s1", InSync: []string{"s1", "s2"}})
	if err := Restart(ctx, db, 4, "s2"); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("restart by a replica: %v, want ErrStaleEpoch", err)
	}
	if err := Restart(ctx, db, 3, "s1"); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("restart at an old epoch: %v, want ErrStaleEpoch", err)
	}
	if err := Restart(ctx, db, 4, "s1"); err != nil {
		t.Fatal(err)
	}
	want := Config{Epoch: 5, Primary: "s1", InSync: []string{"s1"}}
	if diff := cmp.Diff(want, current(t, db)); diff != "" {
		t.Fatalf("config (-want +got):\n%s", diff)
	}
	if err := Restart(ctx, db, 4, "s1"); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("the same restart again: %v, want ErrStaleEpoch", err)
	}
}

// TestUnregister: a removed server leaves the in-sync set and the members;
// a removed primary stays primary until the reconciler replaces it.
func TestUnregister(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	register(t, st, "s1", "s2", "s3")
	setConfig(t, st, Config{Epoch: 4, Primary: "s1", InSync: []string{"s1", "s2", "s3"}})
	if err := Unregister(ctx, st, "s2"); err != nil {
		t.Fatal(err)
	}
	if err := Unregister(ctx, st, "s1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Config{Epoch: 4, Primary: "s1", InSync: []string{"s1", "s3"}}, current(t, st)); diff != "" {
		t.Errorf("configuration after unregistering s2 and the primary s1 (-want +got):\n%s", diff)
	}
	var names []string
	for _, m := range Members(st) {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, []string{"s3"}) {
		t.Errorf("members after unregistering s1 and s2: %v, want [s3]", names)
	}
}
