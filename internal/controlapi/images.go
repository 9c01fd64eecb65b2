package controlapi

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/httpapi"
	"github.com/weftcloud/weft/internal/peercopy"
)

// localContext marks another server's copy of a package or image file
// (?local), which is answered from this server's storage only.
func localContext(r *http.Request) context.Context {
	if r.URL.Query().Has("local") {
		return peercopy.LocalOnly(r.Context())
	}
	return r.Context()
}

func (s *server) headImageFile(w http.ResponseWriter, r *http.Request) error {
	if err := s.nodeMayFetchFile(r); err != nil {
		return err
	}
	n, err := s.images.FileSize(localContext(r), r.PathValue("digest"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *server) putImageFile(w http.ResponseWriter, r *http.Request) error {
	size, err := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	if err != nil {
		return api.Errorf(api.CodeInvalid, "size: the query parameter must be the file's length in bytes")
	}
	if err := s.images.PutFile(r.Context(), r.PathValue("digest"), size, r.Body); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// getImageFile streams a file from the storage service, ranges included, so
// nodes can resume an interrupted download.
func (s *server) getImageFile(w http.ResponseWriter, r *http.Request) error {
	if err := s.nodeMayFetchFile(r); err != nil {
		return err
	}
	resp, err := s.images.OpenFile(localContext(r), r.PathValue("digest"), r.Header.Get("Range"))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Length", "Content-Range", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
	return nil
}

func (s *server) createImage(w http.ResponseWriter, r *http.Request, tenant string) error {
	var img api.Image
	if err := decode(w, r, &img); err != nil {
		return err
	}
	img, err := s.images.Create(r.Context(), tenant, img)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, img)
	return nil
}

func (s *server) listImages(w http.ResponseWriter, r *http.Request, tenant string) error {
	return okPage(w, r, s.images.List(tenant), func(img api.Image) string { return tenantKey(img.Tenant, img.Name) })
}

func (s *server) image(w http.ResponseWriter, r *http.Request, tenant string) error {
	img, err := s.images.Get(tenant, r.PathValue("name"))
	if err != nil {
		return err
	}
	return ok(w, img)
}

// imageByDigest is how a node learns the files of an image one of its
// instances runs: by the digest the instance was deployed with, whoever's
// image it is.
func (s *server) imageByDigest(w http.ResponseWriter, r *http.Request) error {
	digest := r.PathValue("digest")
	if err := s.nodeMayFetch(r, func(role api.RoleSpec) bool { return role.ImageDigest == digest }); err != nil {
		return err
	}
	for _, img := range s.images.List(api.AllTenants) {
		if img.Digest == digest {
			return ok(w, img)
		}
	}
	return api.Errorf(api.CodeNotFound, "no image has digest %s: it was deleted or replaced; deploy again", digest)
}

func (s *server) deleteImage(w http.ResponseWriter, r *http.Request, tenant string) error {
	name := r.PathValue("name")
	if err := s.images.Delete(r.Context(), tenant, name, s.ctl.ImageUsers(tenant, name)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// nodeMayFetchFile is nodeMayFetch for an image's file: one of the files
// of an image an instance of the node uses.
func (s *server) nodeMayFetchFile(r *http.Request) error {
	digest := r.PathValue("digest")
	return s.nodeMayFetch(r, func(role api.RoleSpec) bool {
		return slices.ContainsFunc(s.images.List(api.AllTenants), func(img api.Image) bool {
			return img.Digest == role.ImageDigest && slices.ContainsFunc(img.Files, func(f api.ImageFile) bool { return f.Digest == digest })
		})
	})
}
