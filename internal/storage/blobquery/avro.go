package blobquery

import (
	"io"

	"github.com/hamba/avro/v2/ocf"
)

// The answer is an Avro object container file whose records are a union
// of these four, as Azure writes it and its SDKs (the .NET and
// JavaScript ones) read it: result data in the output serialization,
// errors (fatal or not) with the input offset of the record at fault,
// progress, and the end.
const (
	recData     = "com.microsoft.azure.storage.queryBlobContents.resultData"
	recError    = "com.microsoft.azure.storage.queryBlobContents.error"
	recProgress = "com.microsoft.azure.storage.queryBlobContents.progress"
	recEnd      = "com.microsoft.azure.storage.queryBlobContents.end"
)

const answerSchema = `[
 {"type": "record", "name": "` + recData + `",
  "doc": "Holds result data in the format specified for this query (CSV, JSON, etc.).",
  "fields": [{"name": "data", "type": "bytes"}]},
 {"type": "record", "name": "` + recError + `",
  "doc": "An error that occurred while processing the query.",
  "fields": [
   {"name": "fatal", "type": "boolean", "doc": "If true, this error prevents further query processing."},
   {"name": "name", "type": "string", "doc": "The name of the error"},
   {"name": "description", "type": "string", "doc": "A description of the error"},
   {"name": "position", "type": "long", "doc": "The blob offset at which the error occurred"}]},
 {"type": "record", "name": "` + recProgress + `",
  "doc": "Information about the progress of the query",
  "fields": [
   {"name": "bytesScanned", "type": "long", "doc": "The number of bytes that have been scanned"},
   {"name": "totalBytes", "type": "long", "doc": "The total number of bytes to be scanned in this query"}]},
 {"type": "record", "name": "` + recEnd + `",
  "doc": "Sent as the final message of the response, indicating that all results have been sent.",
  "fields": [{"name": "totalBytes", "type": "long", "doc": "The total number of bytes to be scanned in this query"}]}
]`

// answer writes the records of the answer, each in a block of its own
// followed by flush, so a client sees each as soon as it is made.
type answer struct {
	enc   *ocf.Encoder
	flush func()
}

func newAnswer(w io.Writer, flush func()) (*answer, error) {
	enc, err := ocf.NewEncoder(answerSchema, w)
	if err != nil {
		return nil, err
	}
	return &answer{enc: enc, flush: flush}, nil
}

func (a *answer) send(kind string, fields map[string]any) error {
	if err := a.enc.Encode(map[string]any{kind: fields}); err != nil {
		return err
	}
	if err := a.enc.Flush(); err != nil {
		return err
	}
	a.flush()
	return nil
}

func (a *answer) data(b []byte) error {
	return a.send(recData, map[string]any{"data": b})
}

func (a *answer) error(fatal bool, name, desc string, pos int64) error {
	return a.send(recError, map[string]any{"fatal": fatal, "name": name, "description": desc, "position": pos})
}

func (a *answer) progress(scanned, total int64) error {
	return a.send(recProgress, map[string]any{"bytesScanned": scanned, "totalBytes": total})
}

func (a *answer) end(total int64) error {
	return a.send(recEnd, map[string]any{"totalBytes": total})
}
