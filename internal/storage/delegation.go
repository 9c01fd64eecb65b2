package storage

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Get User Delegation Key and user delegation SAS.
// https://learn.microsoft.com/rest/api/storageservices/get-user-delegation-key
// https://learn.microsoft.com/rest/api/storageservices/create-user-delegation-sas
//
// A user delegation key is not stored: its value is an HMAC, under an
// account key, of everything the key's answer names (principal, validity,
// service, version). A SAS carries those fields (skoid, sktid, skt, ske,
// sks, skv), so the front end derives the key again from them and checks
// the SAS's signature with it. Regenerating the account key revokes every
// user delegation key derived from it, and their SAS.

const (
	// maxKeyLifetime is how far ahead of the request a key may expire.
	maxKeyLifetime = 7 * 24 * time.Hour
	// maxKeyInfo bounds the request body.
	maxKeyInfo = 64 << 10
	// maxSignedNames bounds srh and srq.
	maxSignedNames = 32
)

// Delegation holds the user delegation fields of a SAS.
type Delegation struct {
	ObjectID, TenantID   string // skoid, sktid
	KeyStart, KeyExpiry  time.Time
	Service, KeyVersion  string // sks, skv
	AuthorizedObjectID   string // saoid
	UnauthorizedObjectID string // suoid
	CorrelationID        string // scid
	DelegatedTenantID    string // skdutid
	DelegatedObjectID    string // sduoid
	RequestHeaders       string // srh: names of headers whose values are signed
	RequestQuery         string // srq: names of query parameters whose values are signed

	rawKeyStart, rawKeyExpiry string
}

// parseDelegation reads the user delegation fields of a SAS, nil when it
// has none.
func parseDelegation(q url.Values) (*Delegation, *Error) {
	if !q.Has("skoid") && !q.Has("sktid") {
		return nil, nil
	}
	d := &Delegation{
		ObjectID: q.Get("skoid"), TenantID: q.Get("sktid"), Service: q.Get("sks"), KeyVersion: q.Get("skv"),
		AuthorizedObjectID: q.Get("saoid"), UnauthorizedObjectID: q.Get("suoid"), CorrelationID: q.Get("scid"),
		DelegatedTenantID: q.Get("skdutid"), DelegatedObjectID: q.Get("sduoid"),
		RequestHeaders: q.Get("srh"), RequestQuery: q.Get("srq"),
		rawKeyStart: q.Get("skt"), rawKeyExpiry: q.Get("ske"),
	}
	for name, v := range map[string]string{"skoid": d.ObjectID, "sktid": d.TenantID, "skt": d.rawKeyStart, "ske": d.rawKeyExpiry, "sks": d.Service, "skv": d.KeyVersion} {
		if v == "" {
			return nil, authFailed("%s is mandatory for a user delegation SAS. Cannot be empty", name)
		}
	}
	var err error
	if d.KeyStart, err = parseSASTime(d.rawKeyStart); err != nil {
		return nil, authFailed("skt %q is not a valid ISO 8601 time", d.rawKeyStart)
	}
	if d.KeyExpiry, err = parseSASTime(d.rawKeyExpiry); err != nil {
		return nil, authFailed("ske %q is not a valid ISO 8601 time", d.rawKeyExpiry)
	}
	if !validVersion(d.KeyVersion) {
		return nil, authFailed("skv %q is not a valid version (YYYY-MM-DD)", d.KeyVersion)
	}
	if d.DelegatedObjectID != "" {
		// A principal-bound SAS must come with the named user's own OAuth
		// token; Weft's bearer tokens grant no data access, so none can.
		return nil, authFailed("A user delegation SAS bound to a principal (sduoid) is not supported.")
	}
	if len(strings.Split(d.RequestHeaders, ",")) > maxSignedNames || len(strings.Split(d.RequestQuery, ",")) > maxSignedNames {
		return nil, authFailed("srh and srq name at most %d headers or query parameters each.", maxSignedNames)
	}
	return d, nil
}

// keyValue is the value of the user delegation key the fields name, under
// account key k.
func keyValue(k []byte, account string, d *Delegation) []byte {
	return sign(k, strings.Join([]string{"weft user delegation key", account, d.ObjectID, d.TenantID,
		keyTime(d.KeyStart), keyTime(d.KeyExpiry), d.Service, d.KeyVersion, d.DelegatedTenantID}, "\n"))
}

// keyTime is the form a key's times are answered in: whole seconds, UTC,
// the form the SDKs send back in skt and ske.
func keyTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// userDelegationSASString is the string a user delegation SAS signs for
// its version, resource the canonicalized resource (as a service SAS's).
func userDelegationSASString(r *http.Request, s *SAS, resource string, q url.Values) string {
	d, v := s.Delegation, s.Version
	fields := []string{s.Permissions, q.Get("st"), q.Get("se"), resource,
		d.ObjectID, d.TenantID, d.rawKeyStart, d.rawKeyExpiry, d.Service, d.KeyVersion}
	if versionAtLeast(v, "2020-02-10") {
		fields = append(fields, d.AuthorizedObjectID, d.UnauthorizedObjectID, d.CorrelationID)
	}
	if versionAtLeast(v, "2025-07-05") {
		fields = append(fields, d.DelegatedTenantID, d.DelegatedObjectID)
	}
	snap := ""
	switch s.Resource {
	case "bs":
		snap = q.Get("snapshot")
	case "bv":
		snap = q.Get("versionid")
	}
	fields = append(fields, s.IP, s.Protocol, v, s.Resource, snap)
	if versionAtLeast(v, "2020-12-06") {
		fields = append(fields, s.EncryptionScope)
	}
	if versionAtLeast(v, "2026-04-06") {
		// Dynamic user delegation SAS: the values of the named headers and
		// query parameters are signed too.
		var hs, qs strings.Builder
		for _, n := range splitNames(d.RequestHeaders) {
			hs.WriteString(n + ":" + r.Header.Get(n) + "\n")
		}
		for _, n := range splitNames(d.RequestQuery) {
			qs.WriteString("\n" + n + ":" + q.Get(n))
		}
		fields = append(fields, hs.String(), qs.String())
	}
	fields = append(fields, s.CacheControl, s.ContentDisposition, s.ContentEncoding, s.ContentLanguage, s.ContentType)
	return strings.Join(fields, "\n")
}

func splitNames(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// checkDelegation checks what a user delegation SAS's key allows: the
// blob service, and a request within the key's validity.
func checkDelegation(svc Service, d *Delegation, now time.Time) *Error {
	if svc != Blob || d.Service != "b" {
		return authFailed("A user delegation SAS is valid for the blob service only (sks=b).")
	}
	if now.Before(d.KeyStart) || !now.Before(d.KeyExpiry) {
		return authFailed("Signed key expiry time [%s] must be after signed key start time [%s] and the current time [%s] between them",
			d.KeyExpiry.UTC().Format(http.TimeFormat), d.KeyStart.UTC().Format(http.TimeFormat), now.UTC().Format(http.TimeFormat))
	}
	return nil
}

// isUserDelegationKey reports whether r is Get User Delegation Key.
func (f *front) isUserDelegationKey(r *http.Request, req *Request) bool {
	q := r.URL.Query()
	return f.svc == Blob && req.Path == "" && r.Method == http.MethodPost &&
		q.Get("restype") == "service" && q.Get("comp") == "userdelegationkey"
}

// keyInfo is the body of Get User Delegation Key.
type keyInfo struct {
	XMLName          xml.Name `xml:"KeyInfo"`
	Start            string   `xml:"Start"`
	Expiry           string   `xml:"Expiry"`
	DelegatedUserTid string   `xml:"DelegatedUserTid"`
}

// userDelegationKey is its answer.
type userDelegationKey struct {
	XMLName                xml.Name `xml:"UserDelegationKey"`
	SignedOid              string   `xml:"SignedOid"`
	SignedTid              string   `xml:"SignedTid"`
	SignedStart            string   `xml:"SignedStart"`
	SignedExpiry           string   `xml:"SignedExpiry"`
	SignedService          string   `xml:"SignedService"`
	SignedVersion          string   `xml:"SignedVersion"`
	SignedDelegatedUserTid string   `xml:"SignedDelegatedUserTid,omitempty"`
	Value                  string   `xml:"Value"`
}

// errKeyTime is Azure's answer to a key validity it refuses; like Azure it
// names the value in both XmlNodeName and XmlNodeValue.
func errKeyTime(v string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "InvalidXmlNodeValue",
		Message: "The value for one of the XML nodes is not in the correct format.", XMLNodeName: v, XMLNodeValue: v}
}

// serveUserDelegationKey answers Get User Delegation Key, which Azure
// takes only with an OAuth token.
func (f *front) serveUserDelegationKey(w http.ResponseWriter, r *http.Request, req *Request, version string) {
	key, err := f.userDelegationKey(r, req, version)
	if err != nil {
		f.fail(w, r, req, err)
		return
	}
	out, err := xml.Marshal(key)
	if err != nil {
		f.fail(w, r, req, err)
		return
	}
	body := append([]byte(`<?xml version="1.0" encoding="utf-8"?>`), out...)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (f *front) userDelegationKey(r *http.Request, req *Request, version string) (*userDelegationKey, error) {
	switch req.Auth.Kind {
	case Bearer:
	case Anonymous:
		return nil, errAnonymous()
	default:
		return nil, authFailed("Only authentication scheme Bearer is supported")
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxKeyInfo+1))
	if err != nil {
		return nil, BodyError(err)
	}
	if len(b) > maxKeyInfo {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", "The request body is too large: a KeyInfo is at most %d bytes.", maxKeyInfo)
	}
	var ki keyInfo
	if err := xml.Unmarshal(b, &ki); err != nil {
		return nil, Errorf(http.StatusBadRequest, "InvalidXmlDocument", "XML specified is not syntactically valid: %v", err)
	}
	if ki.Expiry == "" {
		return nil, Errorf(http.StatusBadRequest, "MissingRequiredXmlNode", "A required XML node was not specified in the request body: Expiry.")
	}
	now := f.now()
	start := now
	if ki.Start != "" {
		if start, err = time.Parse(time.RFC3339Nano, ki.Start); err != nil {
			return nil, errKeyTime(ki.Start)
		}
	}
	expiry, err := time.Parse(time.RFC3339Nano, ki.Expiry)
	if err != nil || !expiry.After(start) || !expiry.After(now) || expiry.After(now.Add(maxKeyLifetime)) {
		return nil, errKeyTime(ki.Expiry)
	}
	if ki.DelegatedUserTid != "" && !validGUIDish(ki.DelegatedUserTid) {
		return nil, errKeyTime(ki.DelegatedUserTid)
	}
	if version == "" {
		version = TargetVersion
	}
	d := &Delegation{ObjectID: req.Auth.Principal.ObjectID, TenantID: req.Auth.Principal.TenantID,
		KeyStart: start.Truncate(time.Second), KeyExpiry: expiry.Truncate(time.Second),
		Service: "b", KeyVersion: version, DelegatedTenantID: ki.DelegatedUserTid}
	keys, err := f.keys(r.Context(), req.Account)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("storage: the account has no key to derive a user delegation key from")
	}
	return &userDelegationKey{
		SignedOid: d.ObjectID, SignedTid: d.TenantID,
		SignedStart: keyTime(d.KeyStart), SignedExpiry: keyTime(d.KeyExpiry),
		SignedService: d.Service, SignedVersion: d.KeyVersion, SignedDelegatedUserTid: d.DelegatedTenantID,
		Value: base64.StdEncoding.EncodeToString(keyValue(keys[0], req.Account, d)),
	}, nil
}
