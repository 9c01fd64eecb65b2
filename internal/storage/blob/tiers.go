package blob

import (
	"net/http"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// Access tiers of block blobs. Every byte here is on the same disks
// whatever the tier, so a tier is bookkeeping that clients see: Hot (the
// default, reported as inferred until a tier is set), Cool, Cold, and
// Archive, under which the content cannot be read (409 BlobArchived) until
// Set Blob Tier brings the blob back online. That rehydration is pending for
// a while, as in Azure, and then completes by itself. Azure takes up to 15
// hours (Standard priority) or under one hour (High); here the bytes never
// left, so the wait is kept short (rehydrateStandard, rehydrateHigh) but
// not zero, so clients see and poll the pending state as they do on Azure.

const (
	tierHot     = "Hot"
	tierCool    = "Cool"
	tierCold    = "Cold"
	tierArchive = "Archive"
)

var (
	rehydrateStandard = 10 * time.Second
	rehydrateHigh     = time.Second
)

// rehydrateRec is a pending rehydration from Archive: the blob reaches tier
// To at Done.
type rehydrateRec struct {
	To       string    `json:"to"`
	Priority string    `json:"p"`
	Done     time.Time `json:"d"`
}

// tierState is a block blob's tier as of now: a rehydration whose time has
// come has completed (the record keeps it until the next write settles it,
// so every reader, and a replica or a restarted service, sees the same).
type tierState struct {
	tier     string
	inferred bool
	changed  time.Time
	pending  *rehydrateRec
}

func (r *blobRec) tierState(now time.Time) tierState {
	st := tierState{tier: r.Tier, changed: r.TierChanged}
	if rh := r.Rehydrate; rh != nil {
		if now.Before(rh.Done) {
			st.pending = rh
		} else {
			st.tier, st.changed = rh.To, rh.Done
		}
	}
	if st.tier == "" {
		st.tier, st.inferred = tierHot, true
	}
	return st
}

// settleTier writes a completed rehydration into the record.
func (r *blobRec) settleTier(now time.Time) {
	st := r.tierState(now)
	if r.Rehydrate != nil && st.pending == nil {
		r.Tier, r.TierChanged, r.Rehydrate = st.tier, st.changed, nil
	}
}

// archiveStatus is what x-ms-archive-status answers while a rehydration is
// pending.
func (st tierState) archiveStatus() string {
	if st.pending == nil {
		return ""
	}
	return "rehydrate-pending-to-" + map[string]string{tierHot: "hot", tierCool: "cool", tierCold: "cold"}[st.pending.To]
}

// writeTierHeaders sets the tier headers of Get Blob and Get Blob
// Properties for a block blob.
func writeTierHeaders(h http.Header, rec *blobRec, now time.Time) {
	st := rec.tierState(now)
	h.Set("x-ms-access-tier", st.tier)
	if st.inferred {
		h.Set("x-ms-access-tier-inferred", "true")
	} else {
		h.Set("x-ms-access-tier-change-time", st.changed.UTC().Format(http.TimeFormat))
	}
	if st.pending != nil {
		h.Set("x-ms-archive-status", st.archiveStatus())
		h.Set("x-ms-rehydrate-priority", st.pending.Priority)
	}
}

func errArchived() error {
	return storage.Errorf(http.StatusConflict, "BlobArchived", "This operation is not permitted on an archived blob.")
}

// checkOnline refuses to read or change the content or metadata of an
// archived blob.
func checkOnline(rec *blobRec, now time.Time) error {
	if rec.Type == blockBlob && rec.tierState(now).tier == tierArchive {
		return errArchived()
	}
	return nil
}

// parseTier reads an x-ms-access-tier; "" when absent.
func parseTier(h http.Header) (string, error) {
	switch v := h.Get("x-ms-access-tier"); v {
	case "", tierHot, tierCool, tierCold, tierArchive:
		return v, nil
	}
	return "", errHeader("x-ms-access-tier")
}

// setTier answers Set Blob Tier. A change between online tiers, or to
// Archive, is immediate (200); bringing an archived blob online starts a
// rehydration (202) at the x-ms-rehydrate-priority given. During one, only
// the priority may be raised; another tier is 409 BlobBeingRehydrated.
func (s *Service) setTier(c *call) error {
	if err := s.allow(c, "w", storage.ResObject, ""); err != nil {
		return err
	}
	tier, err := parseTier(c.r.Header)
	if err != nil {
		return err
	}
	if tier == "" {
		return errMissingHeader("x-ms-access-tier")
	}
	priority, err := parsePriority(c.r.Header)
	if err != nil {
		return err
	}
	// Set Blob Tier takes x-ms-if-tags and the lease, not If-*.
	plain := &call{w: c.w, r: c.r.Clone(c.r.Context()), req: c.req, q: c.q, container: c.container, blob: c.blob, ifTags: c.ifTags}
	for _, name := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		plain.r.Header.Del(name)
	}
	now := s.now().UTC()
	status := http.StatusOK
	_, err = s.modifyBlob(plain, func(_ *txn, rec *blobRec) (bool, error) {
		if rec.Type != blockBlob {
			// Page blob tiers (P4 to P80) are for premium accounts.
			return false, errInvalidBlobType()
		}
		rec.settleTier(now)
		st := rec.tierState(now)
		switch {
		case st.pending != nil:
			if tier != st.pending.To {
				return false, storage.Errorf(http.StatusConflict, "BlobBeingRehydrated", "This operation is not permitted because the blob is being rehydrated.")
			}
			if priority == "High" && st.pending.Priority != "High" {
				rec.Rehydrate = &rehydrateRec{To: tier, Priority: priority, Done: minTime(st.pending.Done, now.Add(rehydrateHigh))}
			}
			status = http.StatusAccepted
		case st.tier == tierArchive && tier != tierArchive:
			rec.Rehydrate = newRehydration(tier, priority, now)
			status = http.StatusAccepted
		case st.inferred || tier != st.tier:
			rec.Tier, rec.TierChanged = tier, now
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	c.w.WriteHeader(status)
	return nil
}

// parsePriority reads x-ms-rehydrate-priority; Standard when absent.
func parsePriority(h http.Header) (string, error) {
	switch v := h.Get("x-ms-rehydrate-priority"); v {
	case "":
		return "Standard", nil
	case "Standard", "High":
		return v, nil
	}
	return "", errHeader("x-ms-rehydrate-priority")
}

// newRehydration starts a rehydration from Archive to tier at now.
func newRehydration(tier, priority string, now time.Time) *rehydrateRec {
	wait := rehydrateStandard
	if priority == "High" {
		wait = rehydrateHigh
	}
	return &rehydrateRec{To: tier, Priority: priority, Done: now.Add(wait)}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
