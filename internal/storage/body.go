package storage

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// ReadBody reads a request body of at most limit bytes: more is 413
// RequestBodyTooLarge, a body that cannot be read 400 InvalidInput.
func ReadBody(body io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "InvalidInput", "One of the request inputs is not valid: reading the body: %v", err)
	}
	if int64(len(b)) > limit {
		return nil, ErrBodyTooLarge()
	}
	return b, nil
}

// ErrBodyTooLarge is Azure's answer to a body over an operation's limit.
func ErrBodyTooLarge() error {
	return Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.")
}

// xmlDeclaration opens every XML answer, as Azure writes it.
const xmlDeclaration = `<?xml version="1.0" encoding="utf-8"?>`

// WriteXML answers with status and v encoded as an XML document.
func WriteXML(w http.ResponseWriter, status int, v any) error {
	out, err := xml.Marshal(v)
	if err != nil {
		return fmt.Errorf("storage: encoding an answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(xmlDeclaration)+len(out)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xmlDeclaration)
	_, _ = w.Write(out)
	return nil
}
