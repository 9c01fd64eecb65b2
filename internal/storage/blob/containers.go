package blob

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// allow authorises c. perms lists the SAS permission letters any of which
// suffices; public names the container access level ("blob" or "container")
// that lets an anonymous caller in, "" when none does.
func (s *Service) allow(c *call, perms string, rt storage.ResourceType, public string) error {
	if c.req.Auth.Kind == storage.Anonymous && public != "" && c.container != "" {
		var level string
		_ = s.view(func(tx *boltlog.Tx) error {
			var rec containerRec
			ok, err := getJSON(tx.Bucket(bktContainers), containerKey(c.req.Account, c.container), &rec)
			if ok && err == nil {
				level = rec.Public
			}
			return nil
		})
		if level == "container" || (level == "blob" && public == "blob") {
			return nil
		}
	}
	var first error
	for i := range len(perms) {
		err := c.req.Allow(perms[i], rt)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return storage.Errorf(http.StatusForbidden, "AuthorizationFailure", "This request is not authorized to perform this operation.")
	}
	return first
}

func (s *Service) loadContainer(account, name string) (*containerRec, error) {
	var rec *containerRec
	err := s.view(func(tx *boltlog.Tx) error {
		var err error
		rec, err = (&txn{tx: tx}).getContainer(account, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errContainerNotFound()
	}
	return rec, nil
}

func parsePublicAccess(v string) (string, error) {
	switch v {
	case "", "blob", "container":
		return v, nil
	}
	return "", errHeader("x-ms-blob-public-access")
}

// createContainer answers Create Container. The public access level and
// metadata are set at creation; a second create is 409 ContainerAlreadyExists.
func (s *Service) createContainer(c *call) error {
	if err := s.allow(c, "cw", storage.ResContainer, ""); err != nil {
		return err
	}
	md, err := storage.ReadMetadata(c.r.Header)
	if err != nil {
		return err
	}
	public, err := parsePublicAccess(c.header("x-ms-blob-public-access"))
	if err != nil {
		return err
	}
	now := s.now().UTC()
	rec := &containerRec{Name: c.container, Created: now, Modified: now, ETag: s.etag(now), Meta: md, Public: public}
	err = s.update(func(t *txn) error {
		key := containerKey(c.req.Account, c.container)
		if t.bucket(bktContainers).Get(key) != nil {
			return storage.Errorf(http.StatusConflict, "ContainerAlreadyExists", "The specified container already exists.")
		}
		return putJSON(t.bucket(bktContainers), key, rec)
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), rec.ETag, rec.Modified)
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

func writeTags(h http.Header, etag string, modified time.Time) {
	h.Set("ETag", etag)
	h.Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
}

// deleteContainer answers Delete Container. Azure deletes asynchronously and
// answers 202; here the container and every blob in it go in one
// transaction, so a listing never shows a half-deleted container. With
// container soft delete on, they go to the trash (containerdelete.go).
func (s *Service) deleteContainer(c *call) error {
	if err := s.allow(c, "d", storage.ResContainer, ""); err != nil {
		return err
	}
	if c.header("If-Match") != "" || c.header("If-None-Match") != "" {
		return errHeader("If-Match")
	}
	now := s.now()
	err := s.update(func(t *txn) error {
		rec, err := t.getContainer(c.req.Account, c.container)
		if err != nil {
			return err
		}
		if rec == nil {
			return errContainerNotFound()
		}
		if err := checkConditions(c.r.Header, true, rec.ETag, rec.Modified, false); err != nil {
			return err
		}
		if err := checkWriteLease(&rec.Lease, c.header("x-ms-lease-id"), now, false); err != nil {
			return err
		}
		days, err := t.retention(c.req.Account, func(p *servicePropsXML) *rawXML { return p.ContainerDeleteRetentionPolicy })
		if err != nil {
			return err
		}
		if days > 0 {
			return t.softDeleteContainer(c.req.Account, rec, now, days)
		}
		return t.deleteContainerContents(c.req.Account, c.container, now)
	})
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteContainerContents removes a container with every blob, snapshot,
// soft-deleted blob and uncommitted block in it; an immutable blob refuses
// it (409).
func (t *txn) deleteContainerContents(account, container string, now time.Time) error {
	prefix := blobsPrefix(account, container)
	if _, err := t.purgeDeletedUnder(prefix, time.Time{}); err != nil {
		return err
	}
	var keys [][]byte
	c := t.bucket(bktBlobs).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		var rec blobRec
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("blob: decoding blob: %w", err)
		}
		// A container goes with its blobs, so not while one is immutable.
		if err := checkMutable(&rec, now); err != nil {
			return err
		}
		if err := t.releaseBlob(&rec); err != nil {
			return err
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := t.deleteBlob(k); err != nil {
			return err
		}
	}
	keys = keys[:0]
	bc := t.bucket(bktBlocks).Cursor()
	for k, v := bc.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = bc.Next() {
		var b blockRec
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("blob: decoding block: %w", err)
		}
		if err := t.unref(b.File, b.Inline); err != nil {
			return err
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := t.bucket(bktBlocks).Delete(k); err != nil {
			return err
		}
	}
	return t.bucket(bktContainers).Delete(containerKey(account, container))
}

// getContainerProps answers Get Container Properties and (metadataOnly)
// Get Container Metadata. Anonymous callers may ask when the container is
// public at the container level.
func (s *Service) getContainerProps(c *call, metadataOnly bool) error {
	if err := s.allow(c, "r", storage.ResContainer, "container"); err != nil {
		return err
	}
	rec, err := s.loadContainer(c.req.Account, c.container)
	if err != nil {
		return err
	}
	now := s.now()
	if err := checkReadLease(&rec.Lease, c.header("x-ms-lease-id"), now, false); err != nil {
		return err
	}
	h := c.w.Header()
	writeTags(h, rec.ETag, rec.Modified)
	rec.Meta.WriteHeaders(h)
	if !metadataOnly {
		rec.Lease.writeHeaders(h, now)
		if rec.Public != "" {
			h.Set("x-ms-blob-public-access", rec.Public)
		}
		h.Set("x-ms-has-immutability-policy", "false")
		h.Set("x-ms-has-legal-hold", "false")
		h.Set("x-ms-default-encryption-scope", "$account-encryption-key")
		h.Set("x-ms-deny-encryption-scope-override", "false")
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// updateContainer applies change to an existing container after checking
// its lease and the request's conditions, and answers with the new tags.
func (s *Service) updateContainer(c *call, change func(rec *containerRec) error) error {
	now := s.now().UTC()
	var out containerRec
	err := s.update(func(t *txn) error {
		rec, err := t.getContainer(c.req.Account, c.container)
		if err != nil {
			return err
		}
		if rec == nil {
			return errContainerNotFound()
		}
		if err := checkConditions(c.r.Header, true, rec.ETag, rec.Modified, false); err != nil {
			return err
		}
		if err := checkReadLease(&rec.Lease, c.header("x-ms-lease-id"), now, false); err != nil {
			return err
		}
		if err := change(rec); err != nil {
			return err
		}
		rec.Modified, rec.ETag = now, s.etag(now)
		out = *rec
		return putJSON(t.bucket(bktContainers), containerKey(c.req.Account, c.container), rec)
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), out.ETag, out.Modified)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// setContainerMetadata answers Set Container Metadata, which replaces all
// metadata.
func (s *Service) setContainerMetadata(c *call) error {
	if err := s.allow(c, "w", storage.ResContainer, ""); err != nil {
		return err
	}
	if c.header("If-Unmodified-Since") != "" || c.header("If-Match") != "" || c.header("If-None-Match") != "" {
		// Azure accepts only If-Modified-Since here.
		return errHeader("If-Unmodified-Since")
	}
	md, err := storage.ReadMetadata(c.r.Header)
	if err != nil {
		return err
	}
	return s.updateContainer(c, func(rec *containerRec) error {
		rec.Meta = md
		return nil
	})
}

// getContainerACL answers Get Container ACL: the stored access policies and
// the public access level.
func (s *Service) getContainerACL(c *call) error {
	if err := c.req.AllowACL('r'); err != nil {
		return err
	}
	rec, err := s.loadContainer(c.req.Account, c.container)
	if err != nil {
		return err
	}
	if err := checkReadLease(&rec.Lease, c.header("x-ms-lease-id"), s.now(), false); err != nil {
		return err
	}
	h := c.w.Header()
	writeTags(h, rec.ETag, rec.Modified)
	if rec.Public != "" {
		h.Set("x-ms-blob-public-access", rec.Public)
	}
	storage.WriteSignedIdentifiers(c.w, c.r, rec.ACL)
	return nil
}

// maxXMLBody bounds the XML documents clients send (block lists are the
// largest: 50,000 IDs of up to 64 bytes in their element).
const maxXMLBody = 8 << 20

func readXML(c *call, v any) error {
	body, err := storage.ReadBody(c.r.Body, maxXMLBody)
	if err != nil {
		return err
	}
	return decodeXML(body, v)
}

// decodeXML decodes a request's XML body into v; an empty body leaves v
// as it is. A malformed one is 400 InvalidXmlDocument.
func decodeXML(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := xml.Unmarshal(body, v); err != nil {
		return errXML()
	}
	return nil
}

// setContainerACL answers Set Container ACL: it replaces the stored access
// policies and the public access level (private when the header is
// absent). Of the conditions, only the dates and the lease apply.
func (s *Service) setContainerACL(c *call) error {
	if err := c.req.AllowACL('w'); err != nil {
		return err
	}
	if c.header("If-Match") != "" || c.header("If-None-Match") != "" {
		return errHeader("If-Match")
	}
	public, err := parsePublicAccess(c.header("x-ms-blob-public-access"))
	if err != nil {
		return err
	}
	acl, err := storage.ReadSignedIdentifiers(c.r.Body, storage.BlobPolicyPermissions)
	if err != nil {
		return err
	}
	return s.updateContainer(c, func(rec *containerRec) error {
		rec.Public, rec.ACL = public, acl
		return nil
	})
}

// containerLease answers Lease Container. Only the date conditions apply to
// container leases (If-Match is refused, as Azure does).
func (s *Service) containerLease(c *call) error {
	if err := s.allow(c, "w", storage.ResContainer, ""); err != nil {
		return err
	}
	now := s.now().UTC()
	var res leaseResult
	var out containerRec
	err := s.update(func(t *txn) error {
		rec, err := t.getContainer(c.req.Account, c.container)
		if err != nil {
			return err
		}
		if rec == nil {
			return errContainerNotFound()
		}
		if c.header("If-Match") != "" || c.header("If-None-Match") != "" {
			return errHeader("If-Match")
		}
		if err := checkConditions(c.r.Header, true, rec.ETag, rec.Modified, false); err != nil {
			return err
		}
		res, err = leaseAction(&rec.Lease, c.r.Header, now)
		if err != nil {
			return err
		}
		out = *rec
		return putJSON(t.bucket(bktContainers), containerKey(c.req.Account, c.container), rec)
	})
	if err != nil {
		return err
	}
	writeTags(c.w.Header(), out.ETag, out.Modified)
	writeLeaseResult(c.w, res)
	return nil
}

var _ storage.AccessPolicies = (*Service)(nil)

// AccessPolicy implements storage.AccessPolicies for containers.
func (s *Service) AccessPolicy(_ context.Context, account, container, id string) (storage.SignedIdentifier, bool, error) {
	rec, err := s.loadContainer(account, container)
	if err != nil {
		var se *storage.Error
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			return storage.SignedIdentifier{}, false, nil
		}
		return storage.SignedIdentifier{}, false, err
	}
	si, ok := storage.FindSignedIdentifier(rec.ACL, id)
	return si, ok, nil
}
