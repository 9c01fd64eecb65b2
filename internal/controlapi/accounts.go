package controlapi

import (
	"net/http"

	"github.com/weftcloud/weft/api"
)

func (s *server) createAccount(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateStorageAccount
	if err := decode(w, r, &req); err != nil {
		return err
	}
	acct, err := s.accounts.Create(r.Context(), req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, acct)
	return nil
}

func (s *server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	return ok(w, s.accounts.List(r.Context()))
}

func (s *server) accountKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.accounts.AccountKeys(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, keys)
}

func (s *server) regenerateKey(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.accounts.Regenerate(r.Context(), r.PathValue("name"), r.PathValue("key"))
	if err != nil {
		return err
	}
	return ok(w, keys)
}

func (s *server) deleteAccount(w http.ResponseWriter, r *http.Request) error {
	if err := s.accounts.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
