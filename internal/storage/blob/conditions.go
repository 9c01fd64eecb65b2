package blob

import (
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/weftcloud/weft/internal/storage"
)

// checkConditions evaluates the standard conditional headers against a
// resource. Failed read preconditions (If-None-Match, If-Modified-Since) are
// 304 Not Modified; every other failure is 412 ConditionNotMet.
func checkConditions(h http.Header, exists bool, etag string, modified time.Time, read bool) error {
	mod := modified.Truncate(time.Second)
	if v := h.Get("If-Match"); v != "" {
		if !exists || !etagMatches(v, etag) {
			return errCondition()
		}
	}
	if v := h.Get("If-Unmodified-Since"); v != "" && exists {
		t, err := http.ParseTime(v)
		if err != nil {
			return errHeader("If-Unmodified-Since")
		}
		if mod.After(t) {
			return errCondition()
		}
	}
	if v := h.Get("If-None-Match"); v != "" && exists {
		if etagMatches(v, etag) {
			if read {
				return errNotModified()
			}
			if strings.TrimSpace(v) == "*" {
				return storage.Errorf(http.StatusConflict, "BlobAlreadyExists", "The specified blob already exists.")
			}
			return errCondition()
		}
	}
	if v := h.Get("If-Modified-Since"); v != "" && exists {
		t, err := http.ParseTime(v)
		if err != nil {
			return errHeader("If-Modified-Since")
		}
		if !mod.After(t) {
			if read {
				return errNotModified()
			}
			return errCondition()
		}
	}
	return nil
}

// checkBlobConditions is checkConditions for a blob (rec nil when there is
// none yet) and the call's x-ms-if-tags, which is 412 when false, also on
// reads.
func checkBlobConditions(c *call, rec *blobRec, read bool) error {
	if rec == nil {
		if err := checkConditions(c.r.Header, false, "", time.Time{}, read); err != nil {
			return err
		}
		return checkTagCondition(c.ifTags, nil)
	}
	if err := checkConditions(c.r.Header, true, rec.ETag, rec.Modified, read); err != nil {
		return err
	}
	return checkTagCondition(c.ifTags, rec.Tags)
}

// checkTagCondition evaluates a parsed x-ms-if-tags (or
// x-ms-source-if-tags) against a blob's tags.
func checkTagCondition(cond *tagExpr, tags map[string]string) error {
	if cond != nil && !cond.eval(tags) {
		return errCondition()
	}
	return nil
}

func etagMatches(list, etag string) bool {
	for v := range strings.SplitSeq(list, ",") {
		v = strings.TrimSpace(v)
		if v == "*" || v == etag || "\""+v+"\"" == etag {
			return true
		}
	}
	return false
}

func errCondition() error {
	return storage.Errorf(http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
}

func errNotModified() error {
	return storage.Errorf(http.StatusNotModified, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
}

var containerNameRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9])*$`)

func validContainerName(name string) error {
	switch name {
	case "$root", "$logs", "$web":
		return nil
	}
	if len(name) < 3 || len(name) > 63 {
		return storage.Errorf(http.StatusBadRequest, "OutOfRangeInput", "The specified resource name length is not within the permissible limits.")
	}
	if !containerNameRE.MatchString(name) {
		return storage.Errorf(http.StatusBadRequest, "InvalidResourceName", "The specified resource name contains invalid characters.")
	}
	return nil
}

func validBlobName(name string) error {
	n := utf8.RuneCountInString(name)
	if n < 1 || n > 1024 {
		return storage.Errorf(http.StatusBadRequest, "OutOfRangeInput", "The specified resource name length is not within the permissible limits.")
	}
	if !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return storage.Errorf(http.StatusBadRequest, "InvalidResourceName", "The specified resource name contains invalid characters.")
	}
	return nil
}
