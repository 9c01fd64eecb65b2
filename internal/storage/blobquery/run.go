package blobquery

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

const (
	// dataChunk is how much output one result data record carries at
	// most (more when one output record is larger).
	dataChunk = 64 << 10
	// progressEvery is how much input is scanned between progress
	// records.
	progressEvery = 4 << 20
	// maxRecordErrors is how many non-fatal errors one answer reports;
	// records at fault past them are left out silently.
	maxRecordErrors = 1000
)

// Run answers the request over the blob's bytes, read from in (size
// bytes in all), writing the Avro answer to w and calling flush after
// each of its records. Problems with the input are in the answer (a
// non-fatal error record for a record left out, a fatal one for input
// that is not what the request says); an error returned is a failure to
// read the blob or to write the answer, after which the answer is cut
// short.
func (r *Request) Run(in io.Reader, size int64, w io.Writer, flush func()) error {
	a, err := newAnswer(w, flush)
	if err != nil {
		return err
	}
	cr := &countingReader{r: bufio.NewReaderSize(in, 64<<10)}
	var rd reader
	if r.Input.Type == "json" {
		rd = &jsonReader{in: cr, sep: r.Input.RecordSep}
	} else if rd, err = newCSVReader(cr, r.Input); err != nil {
		return err
	}
	out, err := newWriter(r.Output)
	if err != nil {
		return err
	}
	q := r.Query
	var buf bytes.Buffer
	emit := func(final bool) error {
		if err := out.flush(&buf, final); err != nil {
			return err
		}
		if buf.Len() >= dataChunk || final && buf.Len() > 0 {
			if err := a.data(bytes.Clone(buf.Bytes())); err != nil {
				return err
			}
			buf.Reset()
		}
		return nil
	}
	var rows, count, errs int64
	nextProgress := int64(progressEvery)
	for q.Limit < 0 || rows < q.Limit || q.Count {
		rec, at, err := rd.next()
		if errors.Is(err, io.EOF) {
			break
		}
		var bad errBadJSON
		if errors.As(err, &bad) {
			if err := emit(false); err != nil {
				return err
			}
			if err := a.error(true, "InvalidJsonRecord", bad.Error(), at); err != nil {
				return err
			}
			break
		}
		if err != nil {
			return err
		}
		names, vals, ok, err := r.project(rd, rec)
		var re *recordError
		if errors.As(err, &re) {
			if errs < maxRecordErrors {
				if err := a.error(false, re.name, re.desc, at); err != nil {
					return err
				}
			}
			errs++
			continue
		}
		if err != nil {
			return err
		}
		if ok {
			if q.Count {
				count++
			} else {
				if err := out.row(&buf, names, vals); err != nil {
					return err
				}
				rows++
				if err := emit(false); err != nil {
					return err
				}
			}
		}
		if cr.n >= nextProgress {
			if err := a.progress(cr.n, size); err != nil {
				return err
			}
			nextProgress = cr.n + progressEvery
		}
	}
	if q.Count && (q.Limit < 0 || q.Limit > 0) {
		if err := out.row(&buf, []string{"_1"}, []value{{kind: vNum, n: float64(count), s: strconv.FormatInt(count, 10)}}); err != nil {
			return err
		}
	}
	if err := emit(true); err != nil {
		return err
	}
	if err := a.progress(size, size); err != nil {
		return err
	}
	return a.end(size)
}

// project evaluates the query on one record: ok when it is selected, with
// the names and values of its output columns.
func (r *Request) project(rd reader, rec record) (names []string, vals []value, ok bool, err error) {
	q := r.Query
	if q.Where != nil {
		t, err := q.Where.eval(rec)
		if err != nil || t != yes {
			return nil, nil, false, err
		}
	}
	if q.Count {
		return nil, nil, true, nil
	}
	if q.Star {
		switch rec := rec.(type) {
		case csvRecord:
			header := rd.names()
			for i, f := range rec.fields {
				name := "_" + strconv.Itoa(i+1)
				if i < len(header) {
					name = header[i]
				}
				names, vals = append(names, name), append(vals, strValue(f))
			}
		case jsonRecord:
			for i, k := range rec.keys {
				names, vals = append(names, k), append(vals, jsonValue(rec.vals[i]))
			}
		}
		return names, vals, true, nil
	}
	for _, c := range q.Cols {
		v, err := rec.get(c)
		if err != nil {
			return nil, nil, false, err
		}
		names, vals = append(names, c.String()), append(vals, v)
	}
	return names, vals, true, nil
}
