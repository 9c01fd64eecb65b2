package blob

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Blob-level immutability (WORM): a time-based retention policy and a legal
// hold, each of which keeps the blob's content and metadata from being
// changed or deleted (409 BlobImmutableDueToPolicy, BlobImmutableDueToLegalHold)
// until the policy expires or the hold is cleared. An Unlocked policy may be
// changed or deleted; a Locked one may only be extended. Azure takes these
// on containers with version-level immutability enabled (an account or
// container setting of its management plane); Weft, which has no such
// plane, takes them on any container.
// https://learn.microsoft.com/rest/api/storageservices/set-blob-immutability-policy
// https://learn.microsoft.com/rest/api/storageservices/set-blob-legal-hold

const (
	policyUnlocked = "Unlocked"
	policyLocked   = "Locked"
)

// immutabilityRec is a blob's retention policy.
type immutabilityRec struct {
	Until time.Time `json:"until"`
	Mode  string    `json:"mode"`
}

// checkMutable refuses to change or delete a blob under an unexpired
// policy or a legal hold.
func checkMutable(rec *blobRec, now time.Time) error {
	if rec == nil {
		return nil
	}
	if rec.LegalHold {
		return storage.Errorf(http.StatusConflict, "BlobImmutableDueToLegalHold", "This operation is not permitted as the blob is immutable due to one or more legal holds.")
	}
	if p := rec.Immutability; p != nil && now.Before(p.Until) {
		return storage.Errorf(http.StatusConflict, "BlobImmutableDueToPolicy", "This operation is not permitted as the blob is immutable due to a policy.")
	}
	return nil
}

// parsePolicy reads x-ms-immutability-policy-until-date and -mode; nil
// when the request names no policy.
func parsePolicy(h http.Header, now time.Time) (*immutabilityRec, error) {
	v := h.Get("x-ms-immutability-policy-until-date")
	mode := h.Get("x-ms-immutability-policy-mode")
	if v == "" {
		if mode != "" {
			return nil, errMissingHeader("x-ms-immutability-policy-until-date")
		}
		return nil, nil
	}
	until, err := http.ParseTime(v)
	if err != nil || !until.After(now) {
		return nil, errHeader("x-ms-immutability-policy-until-date")
	}
	switch mode {
	case "":
		mode = policyUnlocked
	case policyUnlocked, policyLocked:
	default:
		return nil, errHeader("x-ms-immutability-policy-mode")
	}
	return &immutabilityRec{Until: until.UTC(), Mode: mode}, nil
}

// parseLegalHold reads x-ms-legal-hold; ok is false when absent.
func parseLegalHold(h http.Header) (hold, ok bool, err error) {
	v := h.Get("x-ms-legal-hold")
	if v == "" {
		return false, false, nil
	}
	hold, err = strconv.ParseBool(v)
	if err != nil {
		return false, false, errHeader("x-ms-legal-hold")
	}
	return hold, true, nil
}

// protectOnWrite gives a blob being written the policy and legal hold its
// request asks for (Put Blob, Put Block List, Copy Blob take them).
func protectOnWrite(c *call, rec *blobRec, now time.Time) error {
	p, err := parsePolicy(c.r.Header, now)
	if err != nil {
		return err
	}
	hold, _, err := parseLegalHold(c.r.Header)
	if err != nil {
		return err
	}
	rec.Immutability, rec.LegalHold = p, hold
	return nil
}

// changePolicy checks that a policy may replace old: an expired or
// Unlocked one may be replaced by any; a Locked one only by a Locked one
// that ends no earlier.
func changePolicy(old, next *immutabilityRec, now time.Time) error {
	if old == nil || old.Mode != policyLocked || !now.Before(old.Until) {
		return nil
	}
	if next == nil || next.Mode != policyLocked || next.Until.Before(old.Until) {
		return storage.Errorf(http.StatusConflict, "BlobImmutableDueToPolicy", "This operation is not permitted as the blob is immutable due to a policy: a locked policy may only be extended.")
	}
	return nil
}

// setImmutabilityPolicy answers Set Blob Immutability Policy.
func (s *Service) setImmutabilityPolicy(c *call) error {
	if err := s.allow(c, "i", storage.ResObject, ""); err != nil {
		return err
	}
	now := s.now().UTC()
	p, err := parsePolicy(c.r.Header, now)
	if err != nil {
		return err
	}
	if p == nil {
		return errMissingHeader("x-ms-immutability-policy-until-date")
	}
	rec, err := s.modifyBlob(c, func(_ *txn, rec *blobRec) (bool, error) {
		if err := changePolicy(rec.Immutability, p, now); err != nil {
			return false, err
		}
		rec.Immutability = p
		return false, nil
	})
	if err != nil {
		return err
	}
	writeImmutability(c.w.Header(), rec)
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// deleteImmutabilityPolicy answers Delete Blob Immutability Policy.
func (s *Service) deleteImmutabilityPolicy(c *call) error {
	if err := s.allow(c, "i", storage.ResObject, ""); err != nil {
		return err
	}
	now := s.now().UTC()
	_, err := s.modifyBlob(c, func(_ *txn, rec *blobRec) (bool, error) {
		if err := changePolicy(rec.Immutability, nil, now); err != nil {
			return false, err
		}
		rec.Immutability = nil
		return false, nil
	})
	if err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// setLegalHold answers Set Blob Legal Hold.
func (s *Service) setLegalHold(c *call) error {
	if err := s.allow(c, "i", storage.ResObject, ""); err != nil {
		return err
	}
	hold, ok, err := parseLegalHold(c.r.Header)
	if err != nil {
		return err
	}
	if !ok {
		return errMissingHeader("x-ms-legal-hold")
	}
	rec, err := s.modifyBlob(c, func(_ *txn, rec *blobRec) (bool, error) {
		rec.LegalHold = hold
		return false, nil
	})
	if err != nil {
		return err
	}
	c.w.Header().Set("x-ms-legal-hold", strconv.FormatBool(rec.LegalHold))
	c.w.WriteHeader(http.StatusOK)
	return nil
}

// writeImmutability sets the immutability headers of a blob's answers.
func writeImmutability(h http.Header, rec *blobRec) {
	if p := rec.Immutability; p != nil {
		h.Set("x-ms-immutability-policy-until-date", p.Until.UTC().Format(http.TimeFormat))
		// Requests name the mode Locked or Unlocked; answers give it in
		// lower case, as Azure does.
		h.Set("x-ms-immutability-policy-mode", strings.ToLower(p.Mode))
	}
	if rec.LegalHold {
		h.Set("x-ms-legal-hold", "true")
	}
}
