// Package placement says which server's storage is the primary and which
// servers hold every acknowledged write (the in-sync set), PacificA-style:
// the configuration lives in the controller's replicated state, and the
// Raft leader replaces a primary that is lost (Reconciler).
//
// Every change of the configuration is a compare-and-set on its record, so
// two writers never both succeed on the same revision. Its epoch grows
// whenever the primary changes; Add and Drop, which the primary's data path
// calls, name the epoch they act for and are refused (ErrStaleEpoch) once a
// new primary took over, so a deposed primary cannot shrink or grow the set
// of its successor.
//
// Writes go through state.Store's Apply, which only the Raft leader serves:
// the functions here run on the leader, or behind Handler, mounted where
// followers forward writes to the leader.
package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// Kind is the state kind of every record of this package: "member/NAME"
// (a Member) and "config" (the Config).
const Kind = "storage"

const (
	memberPrefix = "member/"
	configKey    = "config"
)

// ErrStaleEpoch is returned by Add and Drop (and the Client's) when the
// configuration is no longer at the epoch the caller named: another primary
// took over, or none was ever chosen.
var ErrStaleEpoch = errors.New("stale epoch")

// Member is a server that runs the storage service, as it registered
// itself. It is the API's type, so what GET /v1/storage/config answers and
// what the client and `weft operator storage` read cannot drift apart.
type Member = api.StorageMember

// Config says which member is primary and which hold every acknowledged write.
type Config = api.StorageConfig

// Register records m as a member, replacing an earlier record of the same
// name. An equal record already there is left alone, so a server may
// register on every start without writing to the log. A name that is
// empty or contains "/" is refused with an api.CodeInvalid error.
func Register(ctx context.Context, st state.Store, m Member) error {
	if m.Name == "" || strings.Contains(m.Name, "/") {
		return api.Errorf(api.CodeInvalid, "name: %q is not a server name", m.Name)
	}
	if old, ok := member(st, m.Name); ok && old == m {
		return nil
	}
	data, _ := json.Marshal(m)
	if _, err := st.Apply(ctx, []state.Op{{Kind: Kind, Key: memberPrefix + m.Name, Value: data}}); err != nil {
		return fmt.Errorf("placement: register %s: %w", m.Name, err)
	}
	return nil
}

// Members returns the registered members, sorted by name.
func Members(st state.Store) []Member {
	var out []Member
	for _, e := range st.List(Kind, memberPrefix) {
		var m Member
		if json.Unmarshal(e.Value, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func member(st state.Store, name string) (Member, bool) {
	e, ok := st.Get(Kind, memberPrefix+name)
	if !ok {
		return Member{}, false
	}
	var m Member
	if json.Unmarshal(e.Value, &m) != nil {
		return Member{}, false
	}
	return m, true
}

// Unregister forgets the storage of name, a server removed from the
// cluster for good: it leaves the in-sync set, and no primary copies
// itself to it any more. The primary itself leaves its set only when
// another member takes over, which the Reconciler does once its probes of
// a member no longer registered have failed long enough.
func Unregister(ctx context.Context, st state.Store, name string) error {
	for {
		cfg, _, ok := Current(st)
		if !ok || cfg.Primary == name {
			break
		}
		err := Drop(ctx, st, cfg.Epoch, name)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrStaleEpoch) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if _, err := st.Apply(ctx, []state.Op{{Kind: Kind, Key: memberPrefix + name, Delete: true}}); err != nil {
		return fmt.Errorf("placement: unregister %s: %w", name, err)
	}
	return nil
}

// Current returns the configuration and the revision of its record (for a
// compare-and-set), and false before the first primary was chosen.
func Current(st state.Store) (cfg Config, rev uint64, ok bool) {
	e, ok := st.Get(Kind, configKey)
	if !ok || json.Unmarshal(e.Value, &cfg) != nil {
		return Config{}, 0, false
	}
	return cfg, e.Rev, true
}

// Drop removes name from the in-sync set of epoch, the primary's answer to
// a member that did not acknowledge a write in time. A name not in the set
// is nil. It returns ErrStaleEpoch when the configuration is not at epoch,
// and an api.CodeInvalid error for the primary itself, which leaves the set
// only when another member becomes primary.
func Drop(ctx context.Context, st state.Store, epoch uint64, name string) error {
	return update(ctx, st, epoch, "drop "+name, func(cfg Config) ([]string, error) {
		if name == cfg.Primary {
			return nil, api.Errorf(api.CodeInvalid, "placement: %s is the primary of epoch %d: it cannot leave its in-sync set", name, cfg.Epoch)
		}
		i, found := slices.BinarySearch(cfg.InSync, name)
		if !found {
			return nil, nil
		}
		return slices.Delete(slices.Clone(cfg.InSync), i, i+1), nil
	})
}

// Add puts name, a registered member that holds every acknowledged write
// (it caught up from the primary), into the in-sync set of epoch. A name
// already in the set is nil. It returns ErrStaleEpoch when the
// configuration is not at epoch, and an api.CodeNotFound error when name
// is not a registered member.
func Add(ctx context.Context, st state.Store, epoch uint64, name string) error {
	return update(ctx, st, epoch, "add "+name, func(cfg Config) ([]string, error) {
		i, found := slices.BinarySearch(cfg.InSync, name)
		if found {
			return nil, nil
		}
		if _, ok := member(st, name); !ok {
			return nil, api.Errorf(api.CodeNotFound, "placement: %s is not a registered storage member", name)
		}
		return slices.Insert(slices.Clone(cfg.InSync), i, name), nil
	})
}

// Restart starts a new epoch with name, the primary of epoch, alone in
// its in-sync set: what a primary does before it serves again after it
// stopped (a restart, a lost lease, a replica it could not drop), since
// its replicas may each lack different writes it never acknowledged.
// It returns ErrStaleEpoch when the configuration is not at epoch or name
// is not its primary.
func Restart(ctx context.Context, st state.Store, epoch uint64, name string) error {
	cfg, rev, ok := Current(st)
	if !ok || cfg.Epoch != epoch || cfg.Primary != name {
		return fmt.Errorf("placement: restart %s at epoch %d (current %d, primary %s): %w", name, epoch, cfg.Epoch, cfg.Primary, ErrStaleEpoch)
	}
	err := put(ctx, st, Config{Epoch: epoch + 1, Primary: name, InSync: []string{name}}, rev)
	if errors.Is(err, state.ErrConflict) {
		return fmt.Errorf("placement: restart %s at epoch %d: %w", name, epoch, ErrStaleEpoch)
	}
	return err
}

// update sets the in-sync set of epoch to what change makes of the
// current configuration (nil: nothing to change), by compare-and-set on
// the record's revision. A conflict means someone else changed the record
// in between: the change is made again on what is there now, as long as
// it is still at epoch.
func update(ctx context.Context, st state.Store, epoch uint64, what string, change func(Config) ([]string, error)) error {
	for {
		cfg, rev, ok := Current(st)
		if !ok || cfg.Epoch != epoch {
			return fmt.Errorf("placement: %s at epoch %d (current %d): %w", what, epoch, cfg.Epoch, ErrStaleEpoch)
		}
		inSync, err := change(cfg)
		if err != nil || inSync == nil {
			return err
		}
		cfg.InSync = inSync
		err = put(ctx, st, cfg, rev)
		if !errors.Is(err, state.ErrConflict) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("placement: %s: %w", what, err)
		}
	}
}

// put writes cfg if the record is still at rev (0: absent). A failed check
// returns an error wrapping state.ErrConflict.
func put(ctx context.Context, st state.Store, cfg Config, rev uint64) error {
	data, _ := json.Marshal(cfg)
	_, err := st.Apply(ctx, []state.Op{
		{Kind: Kind, Key: configKey, Check: true, Rev: rev},
		{Kind: Kind, Key: configKey, Value: data},
	})
	if err != nil {
		return fmt.Errorf("placement: write epoch %d: %w", cfg.Epoch, err)
	}
	return nil
}
