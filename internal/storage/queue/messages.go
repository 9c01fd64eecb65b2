package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"math"
	"net/http"
	"time"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// Azure's limits for messages.
const (
	maxMessageText    = 64 << 10
	maxMessageBody    = 4 * maxMessageText // room for XML escaping of the text
	maxVisibility     = 7 * 24 * 60 * 60   // seconds
	defaultTTL        = 7 * 24 * 60 * 60   // seconds
	defaultGetVisible = 30                 // seconds
	maxBatch          = 32
	neverExpires      = math.MaxInt64
)

// neverExpiresText is how Azure writes the expiry of a message whose TTL
// is -1.
const neverExpiresText = "Fri, 31 Dec 9999 23:59:59 GMT"

func formatTime(ns int64) string {
	if ns == neverExpires {
		return neverExpiresText
	}
	return time.Unix(0, ns).UTC().Format(http.TimeFormat)
}

func newPopReceipt() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func errMessageNotFound() error {
	return storage.Errorf(http.StatusNotFound, "MessageNotFound", "The specified message does not exist.")
}

// messageText reads <QueueMessage><MessageText>...</MessageText></QueueMessage>.
func messageText(r *http.Request) (string, error) {
	body, err := storage.ReadBody(r.Body, maxMessageBody)
	if err != nil {
		return "", err
	}
	var m struct {
		XMLName xml.Name `xml:"QueueMessage"`
		Text    *string  `xml:"MessageText"`
	}
	if err := xml.Unmarshal(body, &m); err != nil || m.Text == nil {
		return "", errInvalidXML()
	}
	if len(*m.Text) > maxMessageText {
		return "", storage.ErrBodyTooLarge()
	}
	return *m.Text, nil
}

// anyTTLVersion is the version from which messagettl may be any positive
// number or -1; before it, at most seven days.
const anyTTLVersion = "2017-07-29"

// messageTTL reads Put Message's messagettl: seconds, or -1 for never.
func messageTTL(r *http.Request) (int64, error) {
	lo, hi := int64(-1), int64(math.MaxInt64)
	if v := r.Header.Get("x-ms-version"); v != "" && v < anyTTLVersion { // YYYY-MM-DD compare as strings
		lo, hi = 1, maxVisibility
	}
	ttl, err := intParam(r, "messagettl", defaultTTL, lo, hi)
	if err != nil {
		return 0, err
	}
	if ttl == 0 {
		return 0, storage.Errorf(http.StatusBadRequest, "OutOfRangeQueryParameterValue", "One of the query parameters specified in the request URI is outside the permissible range: messagettl=0.")
	}
	return ttl, nil
}

// expiry is when a message put at now (ns) with ttl seconds expires: never
// for -1. Expiries are kept in int64 nanoseconds, which end in year 2262;
// a TTL that reaches past that never expires either, and its expiry is
// written as -1's is (the end of year 9999) rather than the year it names.
func expiry(now, ttl int64) int64 {
	if ttl == -1 || ttl >= (neverExpires-now)/int64(time.Second) {
		return neverExpires
	}
	return now + ttl*int64(time.Second)
}

type putResult struct {
	XMLName  xml.Name `xml:"QueueMessagesList"`
	Messages []struct {
		MessageID       string `xml:"MessageId"`
		InsertionTime   string `xml:"InsertionTime"`
		ExpirationTime  string `xml:"ExpirationTime"`
		PopReceipt      string `xml:"PopReceipt"`
		TimeNextVisible string `xml:"TimeNextVisible"`
	} `xml:"QueueMessage"`
}

func (s *Service) putMessage(w http.ResponseWriter, r *http.Request, req *storage.Request, queue string) error {
	if err := req.Allow('a', storage.ResObject); err != nil {
		return err
	}
	vis, err := intParam(r, "visibilitytimeout", 0, 0, maxVisibility)
	if err != nil {
		return err
	}
	ttl, err := messageTTL(r)
	if err != nil {
		return err
	}
	if ttl != -1 && vis >= ttl {
		return storage.Errorf(http.StatusBadRequest, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid: visibilitytimeout must be less than messagettl.")
	}
	text, err := messageText(r)
	if err != nil {
		return err
	}
	id := newID()
	var m message
	err = s.db.Write(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, queue)
		if err != nil {
			return err
		}
		now := s.now().UnixNano()
		seq := s.seq.Add(1)
		m = message{Text: text, Inserted: now, Expires: expiry(now, ttl), NextVisible: now + vis*int64(time.Second), PopReceipt: newPopReceipt(), Seq: seq}
		if err := putMessage(b, id, &m); err != nil {
			return err
		}
		return addCount(b, 1)
	})
	if err != nil {
		return err
	}
	var res putResult
	res.Messages = append(res.Messages, struct {
		MessageID       string `xml:"MessageId"`
		InsertionTime   string `xml:"InsertionTime"`
		ExpirationTime  string `xml:"ExpirationTime"`
		PopReceipt      string `xml:"PopReceipt"`
		TimeNextVisible string `xml:"TimeNextVisible"`
	}{id, formatTime(m.Inserted), formatTime(m.Expires), m.PopReceipt, formatTime(m.NextVisible)})
	return storage.WriteXML(w, http.StatusCreated, res)
}

type gotMessage struct {
	MessageID       string `xml:"MessageId"`
	InsertionTime   string `xml:"InsertionTime"`
	ExpirationTime  string `xml:"ExpirationTime"`
	PopReceipt      string `xml:"PopReceipt,omitempty"`
	TimeNextVisible string `xml:"TimeNextVisible,omitempty"`
	DequeueCount    int64  `xml:"DequeueCount"`
	MessageText     string `xml:"MessageText"`
}

type getResult struct {
	XMLName  xml.Name     `xml:"QueueMessagesList"`
	Messages []gotMessage `xml:"QueueMessage"`
}

// getMessages hands out up to numofmessages visible messages, making each
// invisible for visibilitytimeout under a new pop receipt. It reads the
// visibility index from its start and stops at the first message not yet
// due, so its cost does not grow with the messages waiting behind.
func (s *Service) getMessages(w http.ResponseWriter, r *http.Request, req *storage.Request, queue string) error {
	if err := req.Allow('p', storage.ResObject); err != nil {
		return err
	}
	n, err := intParam(r, "numofmessages", 1, 1, maxBatch)
	if err != nil {
		return err
	}
	vis, err := intParam(r, "visibilitytimeout", defaultGetVisible, 1, maxVisibility)
	if err != nil {
		return err
	}
	var res getResult
	err = s.db.Write(func(tx *boltlog.Tx) error {
		res.Messages = res.Messages[:0]
		b, err := queueBucket(tx, req.Account, queue)
		if err != nil {
			return err
		}
		now := s.now().UnixNano()
		for int64(len(res.Messages)) < n {
			due := dueKeys(b, now, int(n)-len(res.Messages))
			if len(due) == 0 {
				break
			}
			for _, k := range due {
				id := visID(k)
				m, err := getMessage(b, id)
				if err != nil {
					return err
				}
				if m == nil {
					// An index entry without its message: drop it.
					if err := b.Bucket(bktVis).Delete(k); err != nil {
						return err
					}
					continue
				}
				if m.Expires <= now {
					if err := deleteMessage(b, id, m); err != nil {
						return err
					}
					continue
				}
				if err := b.Bucket(bktVis).Delete(k); err != nil {
					return err
				}
				m.DequeueCount++
				m.PopReceipt = newPopReceipt()
				m.NextVisible = now + vis*int64(time.Second)
				if err := putMessage(b, id, m); err != nil {
					return err
				}
				res.Messages = append(res.Messages, gotMessage{
					MessageID: id, InsertionTime: formatTime(m.Inserted), ExpirationTime: formatTime(m.Expires),
					PopReceipt: m.PopReceipt, TimeNextVisible: formatTime(m.NextVisible),
					DequeueCount: m.DequeueCount, MessageText: m.Text,
				})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return storage.WriteXML(w, http.StatusOK, res)
}

// dueKeys returns up to n visibility index keys due at or before now.
// Keys are copied: they are used after the cursor moves and the bucket
// changes.
func dueKeys(b *boltlog.Bucket, now int64, n int) [][]byte {
	var keys [][]byte
	c := b.Bucket(bktVis).Cursor()
	for k, _ := c.First(); k != nil && len(keys) < n && visTime(k) <= now; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}

func (s *Service) peekMessages(w http.ResponseWriter, r *http.Request, req *storage.Request, queue string) error {
	if err := req.Allow('r', storage.ResObject); err != nil {
		return err
	}
	n, err := intParam(r, "numofmessages", 1, 1, maxBatch)
	if err != nil {
		return err
	}
	var res getResult
	err = s.db.View(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, queue)
		if err != nil {
			return err
		}
		now := s.now().UnixNano()
		c := b.Bucket(bktVis).Cursor()
		for k, _ := c.First(); k != nil && int64(len(res.Messages)) < n && visTime(k) <= now; k, _ = c.Next() {
			id := visID(k)
			m, err := getMessage(b, id)
			if err != nil {
				return err
			}
			if m == nil || m.Expires <= now {
				continue
			}
			res.Messages = append(res.Messages, gotMessage{
				MessageID: id, InsertionTime: formatTime(m.Inserted), ExpirationTime: formatTime(m.Expires),
				DequeueCount: m.DequeueCount, MessageText: m.Text,
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return storage.WriteXML(w, http.StatusOK, res)
}

// checkReceipt finds a message and checks the caller's pop receipt.
func checkReceipt(b *boltlog.Bucket, id, receipt string, now int64) (*message, error) {
	m, err := getMessage(b, id)
	if err != nil {
		return nil, err
	}
	if m == nil || m.Expires <= now {
		return nil, errMessageNotFound()
	}
	if m.PopReceipt != receipt {
		return nil, storage.Errorf(http.StatusBadRequest, "PopReceiptMismatch", "The specified pop receipt did not match the pop receipt for a dequeued message.")
	}
	return m, nil
}

func popReceipt(r *http.Request) (string, error) {
	q := r.URL.Query()
	if !q.Has("popreceipt") {
		return "", storage.Errorf(http.StatusBadRequest, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request is not specified: popreceipt.")
	}
	return q.Get("popreceipt"), nil
}

func (s *Service) deleteMessage(w http.ResponseWriter, r *http.Request, req *storage.Request, queue, id string) error {
	if err := req.Allow('p', storage.ResObject); err != nil {
		return err
	}
	receipt, err := popReceipt(r)
	if err != nil {
		return err
	}
	err = s.db.Write(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, queue)
		if err != nil {
			return err
		}
		m, err := checkReceipt(b, id, receipt, s.now().UnixNano())
		if err != nil {
			return err
		}
		return deleteMessage(b, id, m)
	})
	if err != nil {
		return err
	}
	return writeEmpty(w, http.StatusNoContent)
}

// updateMessage changes a message's visibility and, with a body, its text;
// it answers with a new pop receipt, so the old one stops working.
func (s *Service) updateMessage(w http.ResponseWriter, r *http.Request, req *storage.Request, queue, id string) error {
	if err := req.Allow('u', storage.ResObject); err != nil {
		return err
	}
	receipt, err := popReceipt(r)
	if err != nil {
		return err
	}
	if !r.URL.Query().Has("visibilitytimeout") {
		return storage.Errorf(http.StatusBadRequest, "MissingRequiredQueryParameter", "A query parameter that's mandatory for this request is not specified: visibilitytimeout.")
	}
	vis, err := intParam(r, "visibilitytimeout", 0, 0, maxVisibility)
	if err != nil {
		return err
	}
	var text *string
	if r.ContentLength != 0 {
		t, err := messageText(r)
		// A client may send an empty body with chunked encoding.
		if err != nil && r.ContentLength > 0 {
			return err
		}
		if err == nil {
			text = &t
		}
	}
	var m *message
	err = s.db.Write(func(tx *boltlog.Tx) error {
		b, err := queueBucket(tx, req.Account, queue)
		if err != nil {
			return err
		}
		now := s.now().UnixNano()
		if m, err = checkReceipt(b, id, receipt, now); err != nil {
			return err
		}
		if err := b.Bucket(bktVis).Delete(visKey(m, id)); err != nil {
			return err
		}
		if text != nil {
			m.Text = *text
		}
		m.PopReceipt = newPopReceipt()
		m.NextVisible = now + vis*int64(time.Second)
		return putMessage(b, id, m)
	})
	if err != nil {
		return err
	}
	w.Header().Set("x-ms-popreceipt", m.PopReceipt)
	w.Header().Set("x-ms-time-next-visible", formatTime(m.NextVisible))
	return writeEmpty(w, http.StatusNoContent)
}

func (s *Service) clearMessages(w http.ResponseWriter, req *storage.Request, queue string) error {
	if err := req.Allow('d', storage.ResObject); err != nil {
		return err
	}
	err := s.db.Update(func(tx *boltlog.Tx) error {
		b := tx.Bucket(bktQueues).Bucket(queueKey(req.Account, queue))
		if b == nil {
			return errQueueNotFound()
		}
		for _, name := range [][]byte{bktMsgs, bktVis} {
			if err := b.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := b.CreateBucket(name); err != nil {
				return err
			}
		}
		return addCount(b, -count(b))
	})
	if err != nil {
		return err
	}
	return writeEmpty(w, http.StatusNoContent)
}
