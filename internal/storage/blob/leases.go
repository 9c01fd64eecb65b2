package blob

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/weftcloud/weft/internal/storage"
)

// state is the lease state Azure reports at now: available, leased,
// expired, breaking or broken.
func (l *leaseRec) state(now time.Time) string {
	switch l.State {
	case "leased":
		if l.Duration > 0 && !now.Before(l.Expires) {
			return "expired"
		}
		return "leased"
	case "breaking":
		if !now.Before(l.BreakEnd) {
			return "broken"
		}
		return "breaking"
	case "broken":
		return "broken"
	}
	return "available"
}

// active reports whether the lease locks the resource at now.
func (l *leaseRec) active(now time.Time) bool {
	st := l.state(now)
	return st == "leased" || st == "breaking"
}

func (l *leaseRec) writeHeaders(h http.Header, now time.Time) {
	st := l.state(now)
	h.Set("x-ms-lease-state", st)
	if st == "leased" || st == "breaking" {
		h.Set("x-ms-lease-status", "locked")
	} else {
		h.Set("x-ms-lease-status", "unlocked")
	}
	if st == "leased" {
		if l.Duration < 0 {
			h.Set("x-ms-lease-duration", "infinite")
		} else {
			h.Set("x-ms-lease-duration", "fixed")
		}
	}
}

// leaseXML returns the lease properties for listings.
func (l *leaseRec) leaseXML(now time.Time) (status, state, duration string) {
	h := http.Header{}
	l.writeHeaders(h, now)
	return h.Get("x-ms-lease-status"), h.Get("x-ms-lease-state"), h.Get("x-ms-lease-duration")
}

// checkWriteLease enforces a lease on a write: with a lease in force the
// request must carry its ID; without one it must carry none.
func checkWriteLease(l *leaseRec, given string, now time.Time, blob bool) error {
	if l.active(now) {
		if given == "" {
			return storage.Errorf(http.StatusPreconditionFailed, "LeaseIdMissing", "There is currently a lease on the resource and no lease ID was specified in the request.")
		}
		if given != l.ID {
			if blob {
				return storage.Errorf(http.StatusPreconditionFailed, "LeaseIdMismatchWithBlobOperation", "The lease ID specified did not match the lease ID for the blob.")
			}
			return storage.Errorf(http.StatusPreconditionFailed, "LeaseIdMismatchWithContainerOperation", "The lease ID specified did not match the lease ID for the container.")
		}
		return nil
	}
	return checkReadLease(l, given, now, blob)
}

// checkReadLease checks a lease ID a read carries (reads need none).
func checkReadLease(l *leaseRec, given string, now time.Time, blob bool) error {
	if given == "" {
		return nil
	}
	if !l.active(now) {
		if blob {
			return storage.Errorf(http.StatusPreconditionFailed, "LeaseNotPresentWithBlobOperation", "There is currently no lease on the blob.")
		}
		return storage.Errorf(http.StatusPreconditionFailed, "LeaseNotPresentWithContainerOperation", "There is currently no lease on the container.")
	}
	if given != l.ID {
		if blob {
			return storage.Errorf(http.StatusPreconditionFailed, "LeaseIdMismatchWithBlobOperation", "The lease ID specified did not match the lease ID for the blob.")
		}
		return storage.Errorf(http.StatusPreconditionFailed, "LeaseIdMismatchWithContainerOperation", "The lease ID specified did not match the lease ID for the container.")
	}
	return nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// leaseResult is what a lease action answers.
type leaseResult struct {
	status int
	id     string
	time   int // x-ms-lease-time for break, -1 when not sent
}

// leaseAction applies x-ms-lease-action to l. It returns the answer; l is
// updated in place.
func leaseAction(l *leaseRec, h http.Header, now time.Time) (leaseResult, error) {
	res := leaseResult{status: http.StatusOK, time: -1}
	id := h.Get("x-ms-lease-id")
	proposed := h.Get("x-ms-proposed-lease-id")
	st := l.state(now)
	conflict := func(code, msg string) (leaseResult, error) {
		return res, storage.Errorf(http.StatusConflict, code, "%s", msg)
	}
	switch action := h.Get("x-ms-lease-action"); action {
	case "acquire":
		d, err := strconv.Atoi(h.Get("x-ms-lease-duration"))
		if err != nil || (d != -1 && (d < 15 || d > 60)) {
			return res, errHeader("x-ms-lease-duration")
		}
		switch st {
		case "leased":
			if proposed == "" || proposed != l.ID {
				return conflict("LeaseAlreadyPresent", "There is already a lease present.")
			}
		case "breaking":
			return conflict("LeaseIsBreakingAndCannotBeAcquired", "There is already a breaking lease present.")
		}
		if proposed == "" {
			proposed = newUUID()
		}
		*l = leaseRec{ID: proposed, State: "leased", Duration: d}
		if d > 0 {
			l.Expires = now.Add(time.Duration(d) * time.Second)
		}
		res.status, res.id = http.StatusCreated, l.ID
	case "renew":
		if id == "" {
			return res, errMissingHeader("x-ms-lease-id")
		}
		switch {
		case st == "available":
			return conflict("LeaseNotPresentWithLeaseOperation", "There is currently no lease.")
		case id != l.ID:
			return conflict("LeaseIdMismatchWithLeaseOperation", "The lease ID specified did not match the lease ID.")
		case st == "breaking":
			return conflict("LeaseIsBreakingAndCannotBeRenewed", "The lease is breaking and cannot be renewed.")
		case st == "broken":
			return conflict("LeaseIsBrokenAndCannotBeRenewed", "The lease is broken and cannot be renewed.")
		}
		l.State = "leased"
		if l.Duration > 0 {
			l.Expires = now.Add(time.Duration(l.Duration) * time.Second)
		}
		res.id = l.ID
	case "change":
		if id == "" {
			return res, errMissingHeader("x-ms-lease-id")
		}
		if proposed == "" {
			return res, errMissingHeader("x-ms-proposed-lease-id")
		}
		switch {
		case st == "available" || st == "expired":
			return conflict("LeaseNotPresentWithLeaseOperation", "There is currently no lease.")
		case st == "breaking":
			return conflict("LeaseIsBreakingAndCannotBeChanged", "The lease is breaking and cannot be changed.")
		case st == "broken":
			return conflict("LeaseIsBrokenAndCannotBeChanged", "The lease is broken and cannot be changed.")
		case id != l.ID && proposed != l.ID:
			return conflict("LeaseIdMismatchWithLeaseOperation", "The lease ID specified did not match the lease ID.")
		}
		l.ID = proposed
		res.id = l.ID
	case "release":
		if id == "" {
			return res, errMissingHeader("x-ms-lease-id")
		}
		if st == "available" {
			return conflict("LeaseNotPresentWithLeaseOperation", "There is currently no lease.")
		}
		if id != l.ID {
			return conflict("LeaseIdMismatchWithLeaseOperation", "The lease ID specified did not match the lease ID.")
		}
		*l = leaseRec{}
	case "break":
		period := -1
		if v := h.Get("x-ms-lease-break-period"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 0 || p > 60 {
				return res, errHeader("x-ms-lease-break-period")
			}
			period = p
		}
		switch st {
		case "available":
			return conflict("LeaseNotPresentWithLeaseOperation", "There is currently no lease.")
		case "expired", "broken":
			l.State, l.BreakEnd = "broken", time.Time{}
			res.time = 0
		case "leased", "breaking":
			end := now
			switch {
			case period >= 0:
				end = now.Add(time.Duration(period) * time.Second)
			case l.Duration > 0:
				end = l.Expires
			}
			if l.Duration > 0 && end.After(l.Expires) && st == "leased" {
				end = l.Expires
			}
			if st == "breaking" && end.After(l.BreakEnd) {
				end = l.BreakEnd
			}
			if !end.After(now) {
				l.State, l.BreakEnd = "broken", time.Time{}
				res.time = 0
			} else {
				l.State, l.BreakEnd = "breaking", end
				res.time = int((end.Sub(now) + time.Second - 1) / time.Second)
			}
		}
		res.status = http.StatusAccepted
	default:
		return res, errHeader("x-ms-lease-action")
	}
	return res, nil
}

func writeLeaseResult(w http.ResponseWriter, res leaseResult) {
	if res.id != "" {
		w.Header().Set("x-ms-lease-id", res.id)
	}
	if res.time >= 0 {
		w.Header().Set("x-ms-lease-time", strconv.Itoa(res.time))
	}
	w.WriteHeader(res.status)
}
