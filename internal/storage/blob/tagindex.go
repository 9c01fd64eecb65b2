package blob

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// The tag index lets Find Blobs by Tags read only the blobs that carry a
// tag of the expression, not every blob of the account. It lives in the
// metadata database beside the blobs, written in the same transaction as
// the blob record it mirrors, so it is as durable and as replicated as the
// record, and cannot disagree with it after a crash.
//
// Two buckets, for base blobs only (Azure finds no snapshots):
//
//	tagindex: account\0key\0value\0container\0name -> (empty)
//	blobtags: account\0container\0name -> the blob's tags, JSON
//
// blobtags tells a write which index entries the blob had, and lets a search
// test its other terms without decoding whole blob records.
var (
	bktTagIndex = []byte("tagindex")
	bktBlobTags = []byte("blobtags")
)

// splitBlobKey returns the parts of a blobKey.
func splitBlobKey(key []byte) (account, container, name, snapshot string) {
	parts := strings.SplitN(string(key), "\x00", 4)
	if len(parts) != 4 {
		return "", "", "", "-"
	}
	return parts[0], parts[1], parts[2], parts[3]
}

func tagIndexKey(account, key, value, container, name string) []byte {
	return []byte(account + "\x00" + key + "\x00" + value + "\x00" + container + "\x00" + name)
}

// indexTags makes the tag index hold tags for the blob stored at key (nil
// when it is deleted). Snapshots are not indexed.
func (t *txn) indexTags(key []byte, tags map[string]string) error {
	account, container, name, snapshot := splitBlobKey(key)
	if snapshot != "" {
		return nil
	}
	own := []byte(account + "\x00" + container + "\x00" + name)
	owners := t.bucket(bktBlobTags)
	var enc []byte
	if len(tags) > 0 {
		var err error
		if enc, err = json.Marshal(tags); err != nil {
			return fmt.Errorf("blob: encoding tags: %w", err)
		}
	}
	old := owners.Get(own)
	if bytes.Equal(old, enc) {
		return nil
	}
	index := t.bucket(bktTagIndex)
	if old != nil {
		var was map[string]string
		if err := json.Unmarshal(old, &was); err != nil {
			return fmt.Errorf("blob: decoding tags of %q: %w", own, err)
		}
		for k, v := range was {
			if err := index.Delete(tagIndexKey(account, k, v, container, name)); err != nil {
				return err
			}
		}
	}
	if enc == nil {
		return owners.Delete(own)
	}
	for k, v := range tags {
		if err := index.Put(tagIndexKey(account, k, v, container, name), nil); err != nil {
			return err
		}
	}
	return owners.Put(own, enc)
}

// deleteBlob removes the record at key, with its index entries.
func (t *txn) deleteBlob(key []byte) error {
	if err := t.indexTags(key, nil); err != nil {
		return err
	}
	return t.bucket(bktBlobs).Delete(key)
}

// buildTagIndex indexes every tagged base blob; Open runs it once, on a
// database written before the index existed.
func buildTagIndex(tx *boltlog.Tx) error {
	t := &txn{tx: tx}
	type pending struct {
		key  []byte
		tags map[string]string
	}
	var todo []pending
	err := tx.Bucket(bktBlobs).ForEach(func(k, v []byte) error {
		var rec struct {
			Tags map[string]string `json:"tg"`
		}
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("blob: decoding %q: %w", k, err)
		}
		if len(rec.Tags) > 0 {
			todo = append(todo, pending{bytes.Clone(k), rec.Tags})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range todo {
		if err := t.indexTags(p.key, p.tags); err != nil {
			return err
		}
	}
	return nil
}

type foundBlobXML struct {
	Name      string  `xml:"Name"`
	Container string  `xml:"ContainerName"`
	Tags      tagsXML `xml:"Tags"`
}

type foundBlobsXML struct {
	XMLName    xml.Name       `xml:"EnumerationResults"`
	Endpoint   string         `xml:"ServiceEndpoint,attr"`
	Where      string         `xml:"Where"`
	Blobs      []foundBlobXML `xml:"Blobs>Blob"`
	NextMarker string         `xml:"NextMarker"`
}

// findBlobs answers Find Blobs by Tags (account) and, with c.container set,
// Find Blobs by Tags in Container. One term drives a scan of the index (an
// equality if there is one, else the ranges on one key); the blobs it
// yields are tested against the other terms through their tag sets. Results
// come in the driving key's value order, then container and name; the
// marker is the index position to resume at.
func (s *Service) findBlobs(c *call) error {
	rt := storage.ResService
	if c.container != "" {
		rt = storage.ResContainer
	}
	if err := s.allow(c, "f", rt, ""); err != nil {
		return err
	}
	where := c.query("where")
	if where == "" {
		return storage.Errorf(http.StatusBadRequest, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request is not specified: where.")
	}
	terms, err := parseTagQuery(where)
	if err != nil {
		return err
	}
	limit, err := maxResults(c)
	if err != nil {
		return err
	}
	container := c.container
	var rest []tagTerm
	for _, t := range terms {
		if t.key != "@container" {
			rest = append(rest, t)
			continue
		}
		if c.container != "" {
			// The container's own operation scopes by its URL; the
			// expression may not name one.
			return storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue",
				"Value for one of the query parameters specified in the request URI is invalid: where: @container is not allowed on a container.")
		}
		container = t.value
	}
	plan := planTagScan(c.req.Account, container, rest)
	var resume []byte
	if m := c.query("marker"); m != "" {
		raw, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil || !bytes.HasPrefix(raw, plan.prefix) {
			return errQuery("marker")
		}
		resume = raw
	}
	out := foundBlobsXML{Endpoint: serviceEndpoint(c), Where: where, Blobs: []foundBlobXML{}}
	now := time.Now()
	err = s.view(func(tx *boltlog.Tx) error {
		if c.container != "" && tx.Bucket(bktContainers).Get(containerKey(c.req.Account, c.container)) == nil {
			return errContainerNotFound()
		}
		owners := tx.Bucket(bktBlobTags)
		cur := tx.Bucket(bktTagIndex).Cursor()
		start := plan.start
		if resume != nil {
			start = resume
		}
		for k, _ := cur.Seek(start); k != nil && bytes.HasPrefix(k, plan.prefix); k, _ = cur.Next() {
			value, blobContainer, name, ok := plan.split(k)
			if !ok {
				continue
			}
			if !plan.within(value) {
				break
			}
			if container != "" && blobContainer != container {
				continue
			}
			if len(out.Blobs) == limit {
				out.NextMarker = base64.RawURLEncoding.EncodeToString(k)
				break
			}
			var tags map[string]string
			if raw := owners.Get([]byte(c.req.Account + "\x00" + blobContainer + "\x00" + name)); raw != nil {
				if err := json.Unmarshal(raw, &tags); err != nil {
					return fmt.Errorf("blob: decoding tags of %s/%s: %w", blobContainer, name, err)
				}
			}
			if !slices.ContainsFunc(rest, func(t tagTerm) bool { return !t.eval(tags) }) &&
				!expiredRaw(tx.Bucket(bktBlobs).Get(blobKey(c.req.Account, blobContainer, name, "")), now) {
				out.Blobs = append(out.Blobs, foundBlobXML{Name: name, Container: blobContainer, Tags: matchedTags(tags, rest)})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return storage.WriteXML(c.w, http.StatusOK, out)
}

// matchedTags is what Azure answers for each blob found: the tags the
// expression names, not all of the blob's.
func matchedTags(tags map[string]string, terms []tagTerm) tagsXML {
	keep := map[string]string{}
	for _, t := range terms {
		keep[t.key] = tags[t.key]
	}
	return tagsXML{Tags: tagList(keep)}
}

// tagScan is the part of the index one search reads: the entries of one
// key from start, while their value is within the bounds.
type tagScan struct {
	prefix, start []byte // account\0key\0[value\0[container\0]]
	keyPrefix     int    // length of account\0key\0
	hi            *tagTerm
}

// planTagScan picks the driving term: an equality (narrowed to the
// container when one is named), else the ranges on the first key that has
// one. checkQueryTerms guaranteed at least one tag term.
func planTagScan(account, container string, terms []tagTerm) tagScan {
	drive := terms[0]
	for _, t := range terms {
		if t.op == "=" {
			drive = t
			break
		}
	}
	keyPrefix := []byte(account + "\x00" + drive.key + "\x00")
	p := tagScan{prefix: keyPrefix, start: keyPrefix, keyPrefix: len(keyPrefix)}
	if drive.op == "=" {
		p.prefix = append(bytes.Clone(keyPrefix), drive.value+"\x00"...)
		if container != "" {
			p.prefix = append(p.prefix, container+"\x00"...)
		}
		p.start = p.prefix
		return p
	}
	for _, t := range terms {
		if t.key != drive.key {
			continue
		}
		switch t.op {
		case ">", ">=":
			p.start = append(bytes.Clone(keyPrefix), t.value...)
		case "<", "<=":
			p.hi = &t
		}
	}
	return p
}

// split decodes an index key under the scan's key.
func (p *tagScan) split(k []byte) (value, container, name string, ok bool) {
	parts := strings.SplitN(string(k[p.keyPrefix:]), "\x00", 3)
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// within reports whether value is under the scan's upper bound; the entries
// come in value order, so the first that is not ends the scan. Values below
// a strict lower bound (at the start of the scan) are skipped by the term
// test that follows, which every driving range term also gets.
func (p *tagScan) within(value string) bool {
	if p.hi == nil {
		return true
	}
	if p.hi.op == "<" {
		return value < p.hi.value
	}
	return value <= p.hi.value
}
