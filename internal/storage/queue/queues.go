package queue

import (
	"bytes"
	"context"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

func (s *Service) createQueue(w http.ResponseWriter, r *http.Request, req *storage.Request, name string) error {
	if err := req.AllowCreate(); err != nil {
		return err
	}
	md, err := storage.ReadMetadata(r.Header)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	err = s.db.Update(func(tx *boltlog.Tx) error {
		status = http.StatusCreated
		qs := tx.Bucket(bktQueues)
		if b := qs.Bucket(queueKey(req.Account, name)); b != nil {
			old, err := readMeta(b)
			if err != nil {
				return err
			}
			if !storage.EqualMetadata(old.Metadata, md) {
				return storage.Errorf(http.StatusConflict, "QueueAlreadyExists", "The specified queue already exists.")
			}
			status = http.StatusNoContent
			return nil
		}
		b, err := qs.CreateBucket(queueKey(req.Account, name))
		if err != nil {
			return err
		}
		if _, err := b.CreateBucket(bktMsgs); err != nil {
			return err
		}
		if _, err := b.CreateBucket(bktVis); err != nil {
			return err
		}
		return writeMeta(b, queueMeta{Metadata: md})
	})
	if err != nil {
		return err
	}
	return writeEmpty(w, status)
}

func (s *Service) deleteQueue(w http.ResponseWriter, req *storage.Request, name string) error {
	if err := req.Allow('d', storage.ResContainer); err != nil {
		return err
	}
	err := s.db.Update(func(tx *boltlog.Tx) error {
		qs := tx.Bucket(bktQueues)
		if qs.Bucket(queueKey(req.Account, name)) == nil {
			return errQueueNotFound()
		}
		return qs.DeleteBucket(queueKey(req.Account, name))
	})
	if err != nil {
		return err
	}
	return writeEmpty(w, http.StatusNoContent)
}

func (s *Service) getMetadata(w http.ResponseWriter, req *storage.Request, name string) error {
	if err := req.Allow('r', storage.ResContainer); err != nil {
		return err
	}
	var meta queueMeta
	var n int64
	err := s.db.View(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, name)
		if err != nil {
			return err
		}
		n = count(b)
		meta, err = readMeta(b)
		return err
	})
	if err != nil {
		return err
	}
	h := w.Header()
	meta.Metadata.WriteHeaders(h)
	h.Set("x-ms-approximate-messages-count", strconv.FormatInt(n, 10))
	return writeEmpty(w, http.StatusOK)
}

func (s *Service) setMetadata(w http.ResponseWriter, r *http.Request, req *storage.Request, name string) error {
	if err := req.Allow('w', storage.ResContainer); err != nil {
		return err
	}
	md, err := storage.ReadMetadata(r.Header)
	if err != nil {
		return err
	}
	err = s.db.Write(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, name)
		if err != nil {
			return err
		}
		meta, err := readMeta(b)
		if err != nil {
			return err
		}
		meta.Metadata = md
		return writeMeta(b, meta)
	})
	if err != nil {
		return err
	}
	return writeEmpty(w, http.StatusNoContent)
}

func (s *Service) getACL(w http.ResponseWriter, r *http.Request, req *storage.Request, name string) error {
	if err := req.AllowACL('r'); err != nil {
		return err
	}
	var meta queueMeta
	err := s.db.View(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, name)
		if err != nil {
			return err
		}
		meta, err = readMeta(b)
		return err
	})
	if err != nil {
		return err
	}
	storage.WriteSignedIdentifiers(w, r, meta.Policies)
	return nil
}

// setACL answers Set Queue ACL, which replaces the queue's stored access
// policies; SAS tokens issued under a removed or changed policy follow at
// once.
func (s *Service) setACL(w http.ResponseWriter, r *http.Request, req *storage.Request, name string) error {
	if err := req.AllowACL('w'); err != nil {
		return err
	}
	policies, err := storage.ReadSignedIdentifiers(r.Body, storage.QueuePolicyPermissions)
	if err != nil {
		return err
	}
	err = s.db.Write(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, name)
		if err != nil {
			return err
		}
		meta, err := readMeta(b)
		if err != nil {
			return err
		}
		meta.Policies = policies
		return writeMeta(b, meta)
	})
	if err != nil {
		return err
	}
	return writeEmpty(w, http.StatusNoContent)
}

var _ storage.AccessPolicies = (*Service)(nil)

// AccessPolicy implements storage.AccessPolicies for queues.
func (s *Service) AccessPolicy(_ context.Context, account, queue, id string) (si storage.SignedIdentifier, ok bool, err error) {
	err = s.db.View(func(tx *boltlog.Tx) error {
		b := tx.Bucket(bktQueues).Bucket(queueKey(account, queue))
		if b == nil {
			return nil
		}
		meta, err := readMeta(b)
		if err != nil {
			return err
		}
		si, ok = storage.FindSignedIdentifier(meta.Policies, id)
		return nil
	})
	return si, ok, err
}

type listResult struct {
	XMLName         xml.Name `xml:"EnumerationResults"`
	ServiceEndpoint string   `xml:"ServiceEndpoint,attr"`
	Prefix          string   `xml:"Prefix,omitempty"`
	Marker          string   `xml:"Marker,omitempty"`
	MaxResults      int64    `xml:"MaxResults,omitempty"`
	Queues          []struct {
		Name     string           `xml:"Name"`
		Metadata storage.Metadata `xml:"Metadata,omitempty"`
	} `xml:"Queues>Queue"`
	NextMarker string `xml:"NextMarker"`
}

func (s *Service) listQueues(w http.ResponseWriter, r *http.Request, req *storage.Request) error {
	if err := req.Allow('l', storage.ResService); err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := intParam(r, "maxresults", 5000, 1, 5000)
	if err != nil {
		return err
	}
	withMeta := strings.Contains(q.Get("include"), "metadata")
	res := listResult{ServiceEndpoint: serviceEndpoint(r, req), Prefix: q.Get("prefix"), Marker: q.Get("marker")}
	if q.Has("maxresults") {
		res.MaxResults = limit
	}
	base := []byte(req.Account + "/")
	from := append(append([]byte{}, base...), res.Prefix...)
	if res.Marker > res.Prefix {
		from = append(append([]byte{}, base...), res.Marker...)
	}
	err = s.db.View(func(tx *boltlog.Tx) error {
		qs := tx.Bucket(bktQueues)
		c := tx.Bolt().Bucket(bktQueues).Cursor() // queues are buckets, not logged keys
		for k, _ := c.Seek(from); k != nil && bytes.HasPrefix(k, base); k, _ = c.Next() {
			name := string(k[len(base):])
			if !strings.HasPrefix(name, res.Prefix) {
				break
			}
			if int64(len(res.Queues)) == limit {
				res.NextMarker = name
				break
			}
			item := struct {
				Name     string           `xml:"Name"`
				Metadata storage.Metadata `xml:"Metadata,omitempty"`
			}{Name: name}
			if withMeta {
				meta, err := readMeta(qs.Bucket(k))
				if err != nil {
					return err
				}
				item.Metadata = storage.Metadata(meta.Metadata)
				if item.Metadata == nil {
					item.Metadata = storage.Metadata{}
				}
			}
			res.Queues = append(res.Queues, item)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return storage.WriteXML(w, http.StatusOK, res)
}

func serviceEndpoint(r *http.Request, req *storage.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if strings.HasPrefix(strings.ToLower(r.Host), req.Account+".") {
		return scheme + "://" + r.Host + "/"
	}
	return scheme + "://" + r.Host + "/" + req.Account + "/"
}

func errInvalidXML() error {
	return storage.Errorf(http.StatusBadRequest, "InvalidXmlDocument", "XML specified is not syntactically valid.")
}
