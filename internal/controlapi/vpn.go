package controlapi

import (
	"net/http"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/vpn"
)

// vpnManager is the VPN gateways' manager, or an error where the API
// serves none (tests of other parts).
func (s *server) vpnManager() (*vpn.Manager, error) {
	if s.vpns == nil {
		return nil, api.Errorf(api.CodeNotFound, "this server has no VPN gateways")
	}
	return s.vpns, nil
}

func (s *server) createVPN(w http.ResponseWriter, r *http.Request, tenant string) error {
	m, err := s.vpnManager()
	if err != nil {
		return err
	}
	var req api.CreateVPN
	if err := decode(w, r, &req); err != nil {
		return err
	}
	v, err := m.Create(r.Context(), tenant, r.PathValue("name"), req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, v)
	return nil
}

func (s *server) listVPNs(w http.ResponseWriter, r *http.Request, tenant string) error {
	m, err := s.vpnManager()
	if err != nil {
		return err
	}
	return ok(w, m.List(tenant))
}

func (s *server) vpn(w http.ResponseWriter, r *http.Request, tenant string) error {
	m, err := s.vpnManager()
	if err != nil {
		return err
	}
	v, err := m.Get(tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, v)
}

func (s *server) deleteVPN(w http.ResponseWriter, r *http.Request, tenant string) error {
	m, err := s.vpnManager()
	if err != nil {
		return err
	}
	if err := m.Delete(r.Context(), tenant, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
