package controlapi

import (
	"net/http"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
)

func (s *server) createAccount(w http.ResponseWriter, r *http.Request, tenant string) error {
	var req api.CreateStorageAccount
	if err := decode(w, r, &req); err != nil {
		return err
	}
	acct, err := s.accounts.Create(r.Context(), tenant, req.Name)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, acct)
	return nil
}

func (s *server) listAccounts(w http.ResponseWriter, r *http.Request, tenant string) error {
	q, err := pageOf(r)
	if err != nil {
		return err
	}
	if !q.paged {
		return ok(w, s.accounts.List(r.Context(), tenant))
	}
	page, more := s.accounts.Page(r.Context(), tenant, q.after, q.limit)
	return writeReadPage(w, r, page, more, func(a api.StorageAccount) string { return a.Name })
}

func (s *server) accountKeys(w http.ResponseWriter, r *http.Request, tenant string) error {
	keys, err := s.accounts.AccountKeys(r.Context(), tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, keys)
}

func (s *server) regenerateKey(w http.ResponseWriter, r *http.Request, tenant string) error {
	keys, err := s.accounts.Regenerate(r.Context(), tenant, r.PathValue("name"), r.PathValue("key"))
	if err != nil {
		return err
	}
	return ok(w, keys)
}

func (s *server) deleteAccount(w http.ResponseWriter, r *http.Request, tenant string) error {
	if err := s.accounts.Delete(r.Context(), tenant, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
