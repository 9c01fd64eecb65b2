package portal

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/storage/blobclient"
)

// The storage pages: accounts and their keys through the API, and a blob
// browser that talks to the storage service with the account's key, which
// the API gives only to tokens that may read it.

func (p *portal) accounts(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := s.api.StorageAccounts(r.Context())
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusOK, "accounts", s, list)
	return nil
}

func (p *portal) createAccount(w http.ResponseWriter, r *http.Request, s *session) error {
	acct, err := s.api.CreateStorageAccount(r.Context(), strings.TrimSpace(r.PostFormValue("name")))
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/storage/"+pathEscape(acct.Name), http.StatusSeeOther)
	return nil
}

type accountView struct {
	Account    api.StorageAccount
	Keys       api.StorageAccountKeys
	Containers []string
}

func (v accountView) PageTitle() string { return "Storage account " + v.Account.Name }

// blobs is a client of the account's blob service, with its key.
func (p *portal) blobs(r *http.Request, s *session, name string) (api.StorageAccount, api.StorageAccountKeys, *blobclient.Client, error) {
	ctx := r.Context()
	keys, err := s.api.StorageAccountKeys(ctx, name)
	if err != nil {
		return api.StorageAccount{}, keys, nil, err
	}
	list, err := s.api.StorageAccounts(ctx)
	if err != nil {
		return api.StorageAccount{}, keys, nil, err
	}
	for _, acct := range list {
		if acct.Name != name {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(keys.Key1)
		if err != nil {
			return acct, keys, nil, fmt.Errorf("portal: account %s: key1 is not base64: %w", name, err)
		}
		// The endpoint is path-style: the service's base URL, then the
		// account.
		base := strings.TrimSuffix(strings.TrimRight(acct.Endpoints["blob"], "/"), "/"+name)
		return acct, keys, blobclient.New(base, name, key), nil
	}
	return api.StorageAccount{}, keys, nil, api.Errorf(api.CodeNotFound, "storage account %s not found", name)
}

func (p *portal) account(w http.ResponseWriter, r *http.Request, s *session) error {
	acct, keys, bc, err := p.blobs(r, s, r.PathValue("account"))
	if err != nil {
		return err
	}
	names, err := bc.Containers(r.Context())
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusOK, "account", s, accountView{Account: acct, Keys: keys, Containers: names})
	return nil
}

func (p *portal) accountAction(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, name := r.Context(), r.PathValue("account")
	switch r.PathValue("action") {
	case "delete":
		if err := s.api.DeleteStorageAccount(ctx, name); err != nil {
			return err
		}
		http.Redirect(w, r, "/storage", http.StatusSeeOther)
		return nil
	case "regenerate":
		key := r.PostFormValue("key")
		if key != "key1" && key != "key2" {
			return api.Errorf(api.CodeInvalid, "key: %q is neither key1 nor key2", key)
		}
		if _, err := s.api.RegenerateStorageAccountKey(ctx, name, key); err != nil {
			return err
		}
	case "containers":
		_, _, bc, err := p.blobs(r, s, name)
		if err != nil {
			return err
		}
		if err := bc.CreateContainer(ctx, strings.TrimSpace(r.PostFormValue("name"))); err != nil {
			return blobError(err)
		}
	default:
		return api.Errorf(api.CodeNotFound, "no storage account action %q", r.PathValue("action"))
	}
	http.Redirect(w, r, "/storage/"+pathEscape(name), http.StatusSeeOther)
	return nil
}

type containerView struct {
	Account   string
	Container string
	Blobs     []blobclient.BlobInfo
	MaxUpload int64
}

func (v containerView) PageTitle() string { return "Container " + v.Container }

func (p *portal) container(w http.ResponseWriter, r *http.Request, s *session) error {
	acct, _, bc, err := p.blobs(r, s, r.PathValue("account"))
	if err != nil {
		return err
	}
	name := r.PathValue("container")
	list, err := bc.List(r.Context(), name, "")
	if err != nil {
		return blobError(err)
	}
	p.render(w, r, http.StatusOK, "container", s, containerView{Account: acct.Name, Container: name, Blobs: list, MaxUpload: p.maxUpload})
	return nil
}

func (p *portal) containerAction(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, container := r.Context(), r.PathValue("container")
	acct, _, bc, err := p.blobs(r, s, r.PathValue("account"))
	if err != nil {
		return err
	}
	back := "/storage/" + pathEscape(acct.Name) + "/c/" + pathEscape(container)
	switch r.PathValue("action") {
	case "upload":
		if err := p.upload(r, s, bc, container); err != nil {
			return err
		}
	case "delete-blob":
		if err := bc.Delete(ctx, container, r.PostFormValue("blob")); err != nil {
			return blobError(err)
		}
	case "delete":
		if err := bc.DeleteContainer(ctx, container); err != nil {
			return blobError(err)
		}
		back = "/storage/" + pathEscape(acct.Name)
	default:
		return api.Errorf(api.CodeNotFound, "no container action %q", r.PathValue("action"))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

// upload stores the form's file as a blob. The service wants the length
// first, so the file is spooled to a temporary file (never held in
// memory), up to maxUpload bytes.
func (p *portal) upload(r *http.Request, s *session, bc *blobclient.Client, container string) error {
	if s.form == nil {
		return api.Errorf(api.CodeInvalid, "upload: send the file in a multipart form")
	}
	part, err := s.form.NextPart()
	if err != nil || part.FormName() != "file" || part.FileName() == "" {
		return api.Errorf(api.CodeInvalid, "upload: choose a file")
	}
	name := part.FileName()
	tmp, err := os.CreateTemp("", "weft-portal-upload-")
	if err != nil {
		return fmt.Errorf("portal: upload: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(part, p.maxUpload+1))
	if err != nil {
		return fmt.Errorf("portal: upload %s: %w", name, err)
	}
	if n > p.maxUpload {
		return api.Errorf(api.CodeInvalid, "upload: %s is larger than %s, the most the portal takes", name, api.Bytes(p.maxUpload))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("portal: upload: %w", err)
	}
	ctype := part.Header.Get("Content-Type")
	if err := bc.Put(r.Context(), container, name, tmp, n, blobclient.PutOptions{ContentType: ctype}); err != nil {
		return blobError(err)
	}
	return nil
}

// download sends a blob as an attachment, never to be shown inline, and
// as opaque bytes whatever type it was stored with.
func (p *portal) download(w http.ResponseWriter, r *http.Request, s *session) error {
	_, _, bc, err := p.blobs(r, s, r.PathValue("account"))
	if err != nil {
		return err
	}
	blob := r.URL.Query().Get("blob")
	resp, err := bc.Get(r.Context(), r.PathValue("container"), blob, "")
	if err != nil {
		return blobError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return api.Errorf(api.CodeNotFound, "blob %s: %s", blob, resp.Status)
	}
	base := blob[strings.LastIndex(blob, "/")+1:]
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": base}))
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		h.Set("Content-Length", cl)
	}
	_, err = io.Copy(w, resp.Body)
	if err != nil {
		p.log.Info("portal: download ended early", "blob", blob, "err", err)
	}
	return nil
}

// blobError makes a storage error an API error the page can show.
func blobError(err error) error {
	if errors.Is(err, blobclient.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "%s", err)
	}
	if errors.Is(err, blobclient.ErrExists) {
		return api.Errorf(api.CodeConflict, "%s", err)
	}
	return api.Errorf(api.CodeInvalid, "the storage service: %s", err)
}

func pathEscape(s string) string { return url.PathEscape(s) }
