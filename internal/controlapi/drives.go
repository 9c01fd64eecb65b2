package controlapi

import (
	"net/http"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
)

func (s *server) createDrive(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.CreateDrive
	if err := decode(w, r, &req); err != nil {
		return err
	}
	d, err := s.drives.Create(r.Context(), tenant, req)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, d)
	return nil
}

func (s *server) listDrives(w http.ResponseWriter, r *http.Request, tenant string) error {
	return okPage(w, r, s.drives.List(tenant), func(d api.Drive) string { return tenantKey(d.Tenant, d.Name) })
}

func (s *server) drive(w http.ResponseWriter, r *http.Request, tenant string) error {
	d, err := s.drives.Get(tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, d)
}

func (s *server) snapshotDrive(w http.ResponseWriter, r *http.Request, tenant string) error {
	snap, err := s.drives.Snapshot(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, snap)
	return nil
}

func (s *server) deleteDrive(w http.ResponseWriter, r *http.Request, tenant string) error {
	if err := s.drives.Delete(r.Context(), tenant, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
