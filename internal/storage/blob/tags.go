package blob

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
)

// Blob index tags are kept with the blob (blobRec.Tags) and, for base
// blobs, in an index that Find Blobs by Tags reads (tagindex.go).

const (
	maxTags        = 10
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

type tagXML struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type tagsXML struct {
	XMLName xml.Name `xml:"Tags"`
	Tags    []tagXML `xml:"TagSet>Tag"`
}

func errTags(why string) error {
	return storage.Errorf(http.StatusBadRequest, "InvalidTag", "The tags specified are invalid: %s.", why)
}

// checkTags applies Azure's rules: at most 10 tags, keys of 1 to 128 and
// values of 0 to 256 characters drawn from letters, digits, space and + - .
// / : = _.
func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return errTags(fmt.Sprintf("%d tags, at most %d are allowed", len(tags), maxTags))
	}
	for k, v := range tags {
		if err := checkTagText(k, 1, maxTagKeyLen); err != nil {
			return errTags(fmt.Sprintf("key %q: %v", k, err))
		}
		if err := checkTagText(v, 0, maxTagValueLen); err != nil {
			return errTags(fmt.Sprintf("value of %q: %v", k, err))
		}
	}
	return nil
}

// checkTagText checks the length and characters of a tag key or value.
func checkTagText(s string, minLen, maxLen int) error {
	if len(s) < minLen || len(s) > maxLen {
		return fmt.Errorf("length %d is not within %d to %d", len(s), minLen, maxLen)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" +-./:=_", r):
		default:
			return fmt.Errorf("character %q is not allowed", r)
		}
	}
	return nil
}

// tagsFromHeader parses x-ms-tags (a query string) of writes that create a
// blob; it returns nil when the header is absent.
func tagsFromHeader(h http.Header) (map[string]string, error) {
	v := h.Get("x-ms-tags")
	if v == "" {
		return nil, nil
	}
	q, err := url.ParseQuery(v)
	if err != nil {
		return nil, errTags("x-ms-tags is not a query string")
	}
	tags := make(map[string]string, len(q))
	for k, vs := range q {
		tags[k] = vs[0]
	}
	return tags, checkTags(tags)
}

// tags is the tag set of a Set Blob Tags body, checked as checkTags does.
func (b *tagsXML) tags() (map[string]string, error) {
	tags := map[string]string{}
	for _, t := range b.Tags {
		if _, dup := tags[t.Key]; dup {
			return nil, errTags(fmt.Sprintf("key %q appears twice", t.Key))
		}
		tags[t.Key] = t.Value
	}
	return tags, checkTags(tags)
}

func tagList(tags map[string]string) []tagXML {
	out := make([]tagXML, 0, len(tags))
	for k, v := range tags {
		out = append(out, tagXML{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b tagXML) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out
}

// getTags answers Get Blob Tags.
func (s *Service) getTags(c *call) error {
	if err := s.allow(c, "t", storage.ResObject, ""); err != nil {
		return err
	}
	rec, _, err := s.loadBlob(c)
	if err != nil {
		return err
	}
	if err := checkTagCondition(c.ifTags, rec.Tags); err != nil {
		return err
	}
	if err := checkReadLease(&rec.Lease, c.header("x-ms-lease-id"), s.now(), true); err != nil {
		return err
	}
	return storage.WriteXML(c.w, http.StatusOK, tagsXML{Tags: tagList(rec.Tags)})
}

// setTags answers Set Blob Tags.
func (s *Service) setTags(c *call) error {
	if err := s.allow(c, "t", storage.ResObject, ""); err != nil {
		return err
	}
	var body tagsXML
	if err := readXML(c, &body); err != nil {
		return err
	}
	tags, err := body.tags()
	if err != nil {
		return err
	}
	// Setting tags does not change the blob's ETag or Last-Modified, and the
	// conditions that apply are x-ms-if-tags and the lease, not If-*.
	plain := &call{w: c.w, r: c.r.Clone(c.r.Context()), req: c.req, q: c.q, container: c.container, blob: c.blob, ifTags: c.ifTags}
	for _, name := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		plain.r.Header.Del(name)
	}
	if _, err := s.modifyBlob(plain, func(_ *txn, rec *blobRec) (bool, error) {
		rec.Tags = tags
		if len(tags) == 0 {
			rec.Tags = nil
		}
		return false, nil
	}); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeTagCount(h http.Header, rec *blobRec) {
	if len(rec.Tags) > 0 {
		h.Set("x-ms-tag-count", strconv.Itoa(len(rec.Tags)))
	}
}
