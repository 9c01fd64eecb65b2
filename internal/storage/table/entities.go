package table

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/boltlog"
)

// writeKind is one entity write operation.
type writeKind uint8

const (
	writeInsert writeKind = iota + 1
	writeReplace
	writeMerge
	writeDelete
)

// entityOp is a write of one entity. An empty ifMatch on replace or merge
// makes it an upsert (insert-or-replace, insert-or-merge).
type entityOp struct {
	kind    writeKind
	pk, rk  string
	ifMatch string
	e       *entity // body; nil for delete
}

// staged is a checked write ready to apply: val nil means delete.
type staged struct {
	key    []byte
	val    []byte
	result *entity
}

// stage checks op against the current state of table b. A refusal (409,
// 404, 412, 400) comes back as a *storage.Error; nothing is written.
func stage(b *boltlog.Bucket, op *entityOp, ts int64) (staged, error) {
	key := entityKey(op.pk, op.rk)
	cur := b.Get(key)
	if op.kind == writeInsert {
		if cur != nil {
			return staged{}, storage.Errorf(http.StatusConflict, "EntityAlreadyExists", "The specified entity already exists.")
		}
	} else if op.ifMatch != "" {
		if cur == nil {
			return staged{}, storage.Errorf(http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.")
		}
		if op.ifMatch != "*" {
			old, err := decodeEntity(op.pk, op.rk, cur)
			if err != nil {
				return staged{}, err
			}
			if !etagMatches(op.ifMatch, old.ts) {
				return staged{}, storage.Errorf(http.StatusPreconditionFailed, "UpdateConditionNotSatisfied", "The update condition specified in the request was not satisfied.")
			}
		}
	}
	if op.kind == writeDelete {
		if cur == nil {
			return staged{}, storage.Errorf(http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.")
		}
		return staged{key: key}, nil
	}
	ne := &entity{pk: op.pk, rk: op.rk, ts: ts, props: op.e.props}
	if op.kind == writeMerge && cur != nil {
		old, err := decodeEntity(op.pk, op.rk, cur)
		if err != nil {
			return staged{}, err
		}
		old.merge(op.e)
		ne.props = old.props
		if len(ne.props) > maxCustomProps {
			return staged{}, storage.Errorf(http.StatusBadRequest, "TooManyProperties", "The entity has more than %d properties.", maxCustomProps)
		}
		if ne.size() > maxEntitySize {
			return staged{}, storage.Errorf(http.StatusBadRequest, "EntityTooLarge", "The entity is larger than the maximum size permitted.")
		}
	}
	return staged{key: key, val: encodeEntity(ne), result: ne}, nil
}

func (st staged) apply(b *boltlog.Bucket) {
	if st.val == nil {
		_ = b.Delete(st.key)
		return
	}
	_ = b.Put(st.key, st.val)
}

// checkIfMatch refuses an If-Match that is neither * nor an ETag of the
// form the service gives (W/"datetime'...'", the W/ optional): 400
// InvalidInput, as Azure answers, rather than a failed precondition.
func checkIfMatch(v string) error {
	if v == "" || v == "*" {
		return nil
	}
	s := strings.TrimPrefix(v, "W/")
	if inner, ok := strings.CutPrefix(s, `"datetime'`); ok {
		if inner, ok = strings.CutSuffix(inner, `'"`); ok {
			if t, err := url.QueryUnescape(inner); err == nil {
				if _, err := parseDateTime(t); err == nil {
					return nil
				}
			}
		}
	}
	return badInput("The etag value '%s' specified in one of the request headers is not valid. Please make sure only one etag value is specified and is valid.", v)
}

// etagMatches compares an If-Match value with an entity's ETag, accepting
// it with or without the weak prefix.
func etagMatches(ifMatch string, ts int64) bool {
	want := etag(ts)
	return ifMatch == want || "W/"+ifMatch == want
}

// writeOne runs a single-entity write durably and returns the written
// entity, or the refusal.
func (s *Service) writeOne(req *storage.Request, table string, op *entityOp) (*entity, error) {
	var res *entity
	err := s.st.write(req.Account, strings.ToLower(table), func(w *boltlog.Bucket) error {
		st, err := stage(w, op, s.st.now())
		if err != nil {
			return err
		}
		st.apply(w)
		res = st.result
		return nil
	})
	return res, err
}

func (s *Service) insertEntity(w http.ResponseWriter, r *http.Request, req *storage.Request, res resource) error {
	if err := req.Allow('a', storage.ResObject); err != nil {
		return err
	}
	body, err := storage.ReadBody(r.Body, maxEntityBody)
	if err != nil {
		return err
	}
	e, err := parseEntity(body, true)
	if err != nil {
		return err
	}
	if err := checkSAS(req, res.table, e.pk, e.rk); err != nil {
		return err
	}
	out, err := s.writeOne(req, res.table, &entityOp{kind: writeInsert, pk: e.pk, rk: e.rk, e: e})
	if err != nil {
		return err
	}
	setCommon(w)
	w.Header().Set("ETag", etag(out.ts))
	md := responseMetadata(r)
	c := &docContext{md: md, base: baseURL(r, req), account: req.Account, table: res.table}
	w.Header().Set("Location", c.base+keyPath(res.table, out.pk, out.rk))
	if preferNoContent(r) {
		w.Header().Set("Preference-Applied", "return-no-content")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if r.Header.Get("Prefer") != "" {
		w.Header().Set("Preference-Applied", "return-content")
	}
	w.Header().Set("Content-Type", md.contentType())
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(appendEntity(nil, c, out, true))
	return nil
}

// writeEntity serves Update (PUT with If-Match), Merge (MERGE or PATCH
// with If-Match), Insert Or Replace and Insert Or Merge (without).
func (s *Service) writeEntity(w http.ResponseWriter, r *http.Request, req *storage.Request, res resource, merge bool) error {
	ifMatch := r.Header.Get("If-Match")
	if err := req.Allow('u', storage.ResObject); err != nil {
		return err
	}
	if err := checkIfMatch(ifMatch); err != nil {
		return err
	}
	if ifMatch == "" {
		if err := req.Allow('a', storage.ResObject); err != nil {
			return err
		}
	}
	if err := validateKeys(res.pk, res.rk); err != nil {
		return err
	}
	if err := checkSAS(req, res.table, res.pk, res.rk); err != nil {
		return err
	}
	body, err := storage.ReadBody(r.Body, maxEntityBody)
	if err != nil {
		return err
	}
	e, err := parseEntity(body, false)
	if err != nil {
		return err
	}
	op := &entityOp{kind: writeReplace, pk: res.pk, rk: res.rk, ifMatch: ifMatch, e: e}
	if merge {
		op.kind = writeMerge
	}
	out, err := s.writeOne(req, res.table, op)
	if err != nil {
		return err
	}
	setCommon(w)
	w.Header().Set("ETag", etag(out.ts))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) deleteEntity(w http.ResponseWriter, r *http.Request, req *storage.Request, res resource) error {
	if err := req.Allow('d', storage.ResObject); err != nil {
		return err
	}
	ifMatch := r.Header.Get("If-Match")
	if ifMatch == "" {
		return storage.Errorf(http.StatusBadRequest, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified: If-Match.")
	}
	if err := checkIfMatch(ifMatch); err != nil {
		return err
	}
	if err := validateKeys(res.pk, res.rk); err != nil {
		return err
	}
	if err := checkSAS(req, res.table, res.pk, res.rk); err != nil {
		return err
	}
	if _, err := s.writeOne(req, res.table, &entityOp{kind: writeDelete, pk: res.pk, rk: res.rk, ifMatch: ifMatch}); err != nil {
		return err
	}
	setCommon(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func validateKeys(pk, rk string) error {
	if err := validateKey("PartitionKey", pk); err != nil {
		return err
	}
	return validateKey("RowKey", rk)
}

// getEntity serves the point query table(PartitionKey='..',RowKey='..').
func (s *Service) getEntity(w http.ResponseWriter, r *http.Request, req *storage.Request, res resource) error {
	if err := req.Allow('r', storage.ResObject); err != nil {
		return err
	}
	if err := checkSAS(req, res.table, res.pk, res.rk); err != nil {
		return err
	}
	q := r.URL.Query()
	filter, err := parseFilter(q.Get("$filter"))
	if err != nil {
		return storage.Errorf(http.StatusBadRequest, "InvalidInput", "%s", err)
	}
	v, err := s.st.entity(req.Account, strings.ToLower(res.table), entityKey(res.pk, res.rk))
	if err != nil {
		return err
	}
	var e *entity
	if v != nil {
		if e, err = decodeEntity(res.pk, res.rk, v); err != nil {
			return err
		}
	}
	if e == nil || !match(filter, e) {
		return storage.Errorf(http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.")
	}
	setCommon(w)
	md := responseMetadata(r)
	c := &docContext{md: md, base: baseURL(r, req), account: req.Account, table: res.table, sel: selectList(q.Get("$select"))}
	w.Header().Set("ETag", etag(e.ts))
	w.Header().Set("Content-Type", md.contentType())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(appendEntity(nil, c, e, true))
	return nil
}
