package storage

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"
)

// Error is an Azure storage error answer. WriteError renders it as XML
// (<Error><Code/><Message/></Error>) for blob and queue and as OData JSON
// for table, with the x-ms-error-code header.
type Error struct {
	Status  int
	Code    string
	Message string
	Header  http.Header // extra headers to answer with; may be nil
	// AuthDetail explains an authentication failure; Azure sends it as
	// <AuthenticationErrorDetail> so a developer can see what was signed.
	AuthDetail string
	// XMLNodeName and XMLNodeValue name the part of an XML body refused
	// (<XmlNodeName>, <XmlNodeValue>).
	XMLNodeName, XMLNodeValue string
}

func (e *Error) Error() string {
	if e.AuthDetail != "" {
		return fmt.Sprintf("storage: %d %s: %s (%s)", e.Status, e.Code, e.Message, e.AuthDetail)
	}
	return fmt.Sprintf("storage: %d %s: %s", e.Status, e.Code, e.Message)
}

// Errorf returns an Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Messages Azure uses for common failures, so clients that match on them work.
const (
	msgAuthFailed = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."
	msgInternal   = "Server encountered an internal error. Please try again after some time."
	msgBusy       = "The server is currently unable to receive requests. Please retry your request."
)

// asError is the answer to err: an *Error as itself; a disk without room
// as 503 ServerBusy, which the SDKs retry, since room comes back as blobs
// are deleted; anything else as 500 InternalError.
func asError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e) && e != nil:
		return e
	case diskFull(err):
		return &Error{Status: http.StatusServiceUnavailable, Code: "ServerBusy", Message: msgBusy}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: msgInternal}
}

func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// BodyError is the answer to a failure to read a request's body, err: the
// client's doing (it cut its upload, or stopped sending), so a 400, not a
// server error.
func BodyError(err error) *Error {
	return Errorf(http.StatusBadRequest, "InvalidInput", "The request body could not be read to its end: %v", err)
}

func authFailed(detail string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: "AuthenticationFailed", Message: msgAuthFailed, AuthDetail: fmt.Sprintf(detail, args...)}
}

// WriteError answers with err: an *Error (found with errors.As) as itself,
// a full disk (ENOSPC, EDQUOT) as 503 ServerBusy, anything else as 500
// InternalError. Answers to HEAD carry no body, as the SDKs read the code
// from x-ms-error-code then.
func WriteError(w http.ResponseWriter, r *http.Request, svc Service, err error) {
	e := asError(err)
	h := w.Header()
	for k, vs := range e.Header {
		h[k] = vs
	}
	h.Set("x-ms-error-code", e.Code)
	// Azure appends the request id and time to every error message.
	msg := e.Message + "\nRequestId:" + h.Get("x-ms-request-id") + "\nTime:" + time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z")
	var body []byte
	if svc == Table {
		h.Set("Content-Type", "application/json;odata=minimalmetadata;streaming=true;charset=utf-8")
		type message struct {
			Lang  string `json:"lang"`
			Value string `json:"value"`
		}
		type odataError struct {
			Code    string  `json:"code"`
			Message message `json:"message"`
		}
		body, _ = json.Marshal(map[string]odataError{"odata.error": {Code: e.Code, Message: message{Lang: "en-US", Value: msg}}})
	} else {
		h.Set("Content-Type", "application/xml")
		x := struct {
			XMLName    xml.Name `xml:"Error"`
			Code       string   `xml:"Code"`
			Message    string   `xml:"Message"`
			AuthDetail string   `xml:"AuthenticationErrorDetail,omitempty"`
			NodeName   string   `xml:"XmlNodeName,omitempty"`
			NodeValue  string   `xml:"XmlNodeValue,omitempty"`
		}{Code: e.Code, Message: msg, AuthDetail: e.AuthDetail, NodeName: e.XMLNodeName, NodeValue: e.XMLNodeValue}
		out, _ := xml.Marshal(x)
		body = []byte(`<?xml version="1.0" encoding="utf-8"?>` + string(out))
	}
	if r != nil && r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
