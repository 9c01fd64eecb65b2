package controlapi

import (
	"net/http"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
)

// publishExtension stores an extension archive (the request's body) in
// the caller's tenant.
func (s *server) publishExtension(w http.ResponseWriter, r *http.Request, tenant string) error {
	ext, err := s.extensions.Publish(r.Context(), tenant, r.Body)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, ext)
	return nil
}

func (s *server) listExtensions(w http.ResponseWriter, r *http.Request, tenant string) error {
	return ok(w, s.extensions.List(tenant))
}

// extension is one version of an extension (?version=), the newest
// without.
func (s *server) extension(w http.ResponseWriter, r *http.Request, tenant string) error {
	ext, err := s.extensions.Get(tenant, r.PathValue("name"), r.URL.Query().Get("version"))
	if err != nil {
		return err
	}
	return ok(w, ext)
}

// usesPackage reports whether a role runs digest: its own package or an
// extension's.
func usesPackage(role api.RoleSpec, digest string) bool {
	if role.Package == digest {
		return true
	}
	for _, e := range role.Extensions {
		if e.Package == digest {
			return true
		}
	}
	return false
}
