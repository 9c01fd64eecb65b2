package controlapi

import (
	"net/http"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
)

func (s *server) createNetwork(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.CreateNetwork
	if err := decode(w, r, &req); err != nil {
		return err
	}
	n, err := s.networks.Create(r.Context(), tenant, req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, n)
	return nil
}

func (s *server) listNetworks(w http.ResponseWriter, r *http.Request, tenant string) error {
	return ok(w, s.networks.List(tenant))
}

func (s *server) network(w http.ResponseWriter, r *http.Request, tenant string) error {
	n, err := s.networks.Get(tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, n)
}

func (s *server) deleteNetwork(w http.ResponseWriter, r *http.Request, tenant string) error {
	if err := s.networks.Delete(r.Context(), tenant, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) networkRules(w http.ResponseWriter, r *http.Request, tenant string) error {
	rules, err := s.networks.Rules(tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, rules)
}

func (s *server) addNetworkRule(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.NetworkRule
	if err := decode(w, r, &req); err != nil {
		return err
	}
	rule, err := s.networks.AddRule(r.Context(), tenant, r.PathValue("name"), req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, rule)
	return nil
}

func (s *server) removeNetworkRule(w http.ResponseWriter, r *http.Request, tenant string) error {
	if err := s.networks.RemoveRule(r.Context(), tenant, r.PathValue("name"), r.PathValue("rule")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
