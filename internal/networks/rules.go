package networks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/state"
)

// KindRules holds each network's security rules (api.NetworkRule), keyed
// as the network (Key), a JSON list by priority; a network without rules
// has no entry. They are apart from the network's record, which every
// deploy onto the network rewrites: a rule changed meanwhile does not
// make the deploy try again, and the nodes' assignments hear of a change
// from the entry's revision alone (fabric's assignment views).
const KindRules = "netrules"

// ruleAttempts bounds how often a rule's write is tried again when the
// network's record changed under it (a deploy took an address).
const ruleAttempts = 5

// Rules reads a network's rules, by priority, and the revision of their
// entry (0: none).
func Rules(st state.Store, tenant, name string) ([]api.NetworkRule, uint64) {
	e, ok := st.Get(KindRules, Key(tenant, name))
	if !ok {
		return nil, 0
	}
	var rules []api.NetworkRule
	if json.Unmarshal(e.Value, &rules) != nil {
		return nil, e.Rev
	}
	return rules, e.Rev
}

// Rules returns one of a tenant's networks' rules, by priority.
func (m *Manager) Rules(tenant, network string) ([]api.NetworkRule, error) {
	if _, _, ok := Lookup(m.st, tenant, network); !ok {
		return nil, api.Errorf(api.CodeNotFound, "no network named %s", network)
	}
	rules, _ := Rules(m.st, tenant, network)
	if rules == nil {
		rules = []api.NetworkRule{}
	}
	return rules, nil
}

// AddRule adds a rule to one of a tenant's networks and returns it as
// stored (api.NetworkRule.Check's canonical form). A rule that is
// invalid (api.CodeInvalid, field by field), or whose name or priority
// another rule of the network has, or that would be one too many
// (api.CodeConflict), stores nothing.
func (m *Manager) AddRule(ctx context.Context, tenant, network string, r api.NetworkRule) (api.NetworkRule, error) {
	r, err := r.Check()
	if err != nil {
		return api.NetworkRule{}, err
	}
	err = m.changeRules(ctx, tenant, network, func(rules []api.NetworkRule) ([]api.NetworkRule, error) {
		for _, o := range rules {
			switch {
			case o.Name == r.Name:
				return nil, api.Errorf(api.CodeConflict, "name: network %s has a rule named %s (weft network rule remove %s %s first to replace it)", network, r.Name, network, r.Name)
			case o.Priority == r.Priority:
				return nil, api.Errorf(api.CodeConflict, "priority: rule %s of network %s has priority %d; each rule needs a priority of its own", o.Name, network, r.Priority)
			}
		}
		if len(rules) >= api.MaxNetworkRules {
			return nil, api.Errorf(api.CodeConflict, "network %s has %d rules, the most a network may have", network, len(rules))
		}
		rules = append(rules, r)
		slices.SortFunc(rules, func(a, b api.NetworkRule) int { return cmp.Compare(a.Priority, b.Priority) })
		return rules, nil
	})
	if err != nil {
		return api.NetworkRule{}, err
	}
	return r, nil
}

// RemoveRule removes a rule of one of a tenant's networks;
// api.CodeNotFound when the network or the rule is not there.
func (m *Manager) RemoveRule(ctx context.Context, tenant, network, name string) error {
	return m.changeRules(ctx, tenant, network, func(rules []api.NetworkRule) ([]api.NetworkRule, error) {
		i := slices.IndexFunc(rules, func(r api.NetworkRule) bool { return r.Name == name })
		if i < 0 {
			return nil, api.Errorf(api.CodeNotFound, "network %s has no rule named %s", network, name)
		}
		return slices.Delete(rules, i, i+1), nil
	})
}

// changeRules writes change's rules for a tenant's network, with checks
// that neither the network nor its rules changed since they were read (a
// network deleted meanwhile takes its rules with it: they must not come
// back for a network of the same name). It reads and tries again when
// they did.
func (m *Manager) changeRules(ctx context.Context, tenant, network string, change func([]api.NetworkRule) ([]api.NetworkRule, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range ruleAttempts {
		_, netRev, ok := Lookup(m.st, tenant, network)
		if !ok {
			return api.Errorf(api.CodeNotFound, "no network named %s", network)
		}
		rules, rev := Rules(m.st, tenant, network)
		rules, err := change(slices.Clone(rules))
		if err != nil {
			return err
		}
		key := Key(tenant, network)
		write := state.Op{Kind: KindRules, Key: key, Delete: true}
		if len(rules) > 0 {
			write.Value, _ = json.Marshal(rules) // rules always marshal
			write.Delete = false
		}
		_, err = m.st.Apply(ctx, []state.Op{
			{Kind: KindNetworks, Key: key, Check: true, Rev: netRev},
			{Kind: KindRules, Key: key, Check: true, Rev: rev},
			write,
		})
		if errors.Is(err, state.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("networks: rules of %s: %w", network, err)
		}
		return nil
	}
	return api.Errorf(api.CodeConflict, "network %s kept changing meanwhile; try again", network)
}
