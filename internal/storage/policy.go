package storage

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Stored access policies (signed identifiers) are kept on a container, a
// queue or a table with Set ACL and named by a service SAS with si. The
// services store them; this file holds what the three share: the type, the
// XML body of Get/Set ACL and its checks, and the front end's completion
// of a SAS from its policy.
// https://learn.microsoft.com/rest/api/storageservices/define-stored-access-policy

// MaxSignedIdentifiers is how many stored access policies a container,
// queue or table may have; MaxSignedIdentifierID bounds the length of an Id.
const (
	MaxSignedIdentifiers  = 5
	MaxSignedIdentifierID = 64
)

// Permission letters a stored access policy may grant, per service.
const (
	BlobPolicyPermissions  = "racwdxyltmeopi"
	QueuePolicyPermissions = "raup"
	TablePolicyPermissions = "raud"
)

// SignedIdentifier is one stored access policy. Start and Expiry are UTC
// times in Azure's form (2006-01-02T15:04:05.0000000Z), "" when the policy
// leaves them to the SAS; so is an empty Permission. The JSON form is how
// the services persist it.
type SignedIdentifier struct {
	ID         string `json:"id"`
	Start      string `json:"s,omitempty"`
	Expiry     string `json:"e,omitempty"`
	Permission string `json:"p,omitempty"`
}

// AccessPolicies is the optional interface of a Handler that keeps stored
// access policies. The front end calls it on every request carrying a
// service SAS with si, so changing or deleting a policy takes effect on
// the next request.
type AccessPolicies interface {
	// AccessPolicy returns the policy named id of the container, queue or
	// table named resource (a table name in any case). ok is false when the
	// resource or the policy does not exist.
	AccessPolicy(ctx context.Context, account, resource, id string) (si SignedIdentifier, ok bool, err error)
}

// policyTimeFormat is how Azure writes policy times in Get ACL answers.
const policyTimeFormat = "2006-01-02T15:04:05.0000000Z"

// maxACLBody bounds a Set ACL body: five policies fit in a few KiB.
const maxACLBody = 64 << 10

// signedIdentifiersXML is the body of Get and Set ACL.
type signedIdentifiersXML struct {
	XMLName xml.Name      `xml:"SignedIdentifiers"`
	Items   []signedIDXML `xml:"SignedIdentifier"`
}

type signedIDXML struct {
	ID     string `xml:"Id"`
	Policy struct {
		Start      string `xml:"Start,omitempty"`
		Expiry     string `xml:"Expiry,omitempty"`
		Permission string `xml:"Permission,omitempty"`
	} `xml:"AccessPolicy"`
}

// ReadSignedIdentifiers reads and checks the body of a Set ACL request: at
// most five identifiers, each Id 1 to 64 characters and unique, times in
// ISO 8601, permission letters among perms (one of the *PolicyPermissions).
// An empty body is no policies. The error is an *Error: 400
// InvalidXmlDocument for a malformed document or a broken limit, 400
// InvalidXmlNodeValue for a bad time or permission, 413
// RequestBodyTooLarge.
func ReadSignedIdentifiers(body io.Reader, perms string) ([]SignedIdentifier, error) {
	raw, err := ReadBody(body, maxACLBody)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var doc signedIdentifiersXML
	if err := xml.Unmarshal(raw, &doc); err != nil {
		return nil, invalidXML("XML specified is not syntactically valid.")
	}
	if len(doc.Items) > MaxSignedIdentifiers {
		return nil, invalidXML("XML specified is not syntactically valid: at most %d signed identifiers are allowed.", MaxSignedIdentifiers)
	}
	out := make([]SignedIdentifier, 0, len(doc.Items))
	for _, it := range doc.Items {
		if it.ID == "" || len(it.ID) > MaxSignedIdentifierID {
			return nil, invalidXML("XML specified is not syntactically valid: a signed identifier's Id must have 1 to %d characters.", MaxSignedIdentifierID)
		}
		for _, prev := range out {
			if prev.ID == it.ID {
				return nil, invalidXML("XML specified is not syntactically valid: the signed identifier %q appears twice.", it.ID)
			}
		}
		si := SignedIdentifier{ID: it.ID, Permission: strings.TrimSpace(it.Policy.Permission)}
		if si.Start, err = policyTime("Start", it.Policy.Start); err != nil {
			return nil, err
		}
		if si.Expiry, err = policyTime("Expiry", it.Policy.Expiry); err != nil {
			return nil, err
		}
		for _, c := range si.Permission {
			if !strings.ContainsRune(perms, c) {
				return nil, badNode("Permission", si.Permission)
			}
		}
		out = append(out, si)
	}
	return out, nil
}

// policyTime normalises a policy time to Azure's form; "" stays "".
func policyTime(node, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	t, err := parseSASTime(v)
	if err != nil {
		return "", badNode(node, v)
	}
	return t.UTC().Format(policyTimeFormat), nil
}

func invalidXML(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "InvalidXmlDocument", format, args...)
}

func badNode(node, v string) *Error {
	return Errorf(http.StatusBadRequest, "InvalidXmlNodeValue", "The value for one of the XML nodes is not in the correct format: %s %q.", node, v)
}

// SignedIdentifiersXML is the body of a Get ACL answer, policies in the
// order they were set.
func SignedIdentifiersXML(ids []SignedIdentifier) []byte {
	var doc signedIdentifiersXML
	doc.Items = make([]signedIDXML, len(ids))
	for i, si := range ids {
		it := &doc.Items[i]
		it.ID = si.ID
		it.Policy.Start, it.Policy.Expiry, it.Policy.Permission = si.Start, si.Expiry, si.Permission
	}
	out, _ := xml.Marshal(doc) // strings only: cannot fail
	return append([]byte(xml.Header), out...)
}

// WriteSignedIdentifiers answers a Get ACL request with ids, after the
// headers the service set on w.
func WriteSignedIdentifiers(w http.ResponseWriter, r *http.Request, ids []SignedIdentifier) {
	body := SignedIdentifiersXML(ids)
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// FindSignedIdentifier returns the policy named id among ids.
func FindSignedIdentifier(ids []SignedIdentifier, id string) (SignedIdentifier, bool) {
	for _, si := range ids {
		if si.ID == id {
			return si, true
		}
	}
	return SignedIdentifier{}, false
}

// applyPolicy completes a service SAS that names a stored access policy
// (si) from that policy, after its signature was verified over the fields
// as sent. The SAS and the policy must together give the expiry and the
// permissions, and may not both give the same field. Azure's documents
// say that is 400, but the service answers 403 AuthenticationFailed, and
// so does this.
func (f *front) applyPolicy(ctx context.Context, account, path string, s *SAS) error {
	ap, ok := f.h.(AccessPolicies)
	if !ok {
		return authFailed("The %s service keeps no stored access policies (si=%s).", f.svc, s.Identifier)
	}
	resource, _, _ := strings.Cut(path, "/")
	if f.svc == Table {
		resource = s.TableName
	}
	p, ok, err := ap.AccessPolicy(ctx, account, resource, s.Identifier)
	if err != nil {
		return err
	}
	if !ok {
		return authFailed("The specified signed identifier %q does not exist on %s.", s.Identifier, resource)
	}
	if (p.Start != "" && !s.Start.IsZero()) || (p.Expiry != "" && !s.Expiry.IsZero()) || (p.Permission != "" && s.Permissions != "") {
		return authFailed("Access policy fields can be associated with signature or SAS identifier but not both")
	}
	if p.Start != "" {
		if s.Start, err = time.Parse(time.RFC3339Nano, p.Start); err != nil {
			return fmt.Errorf("storage: stored policy %s: start %q: %w", p.ID, p.Start, err)
		}
	}
	if p.Expiry != "" {
		if s.Expiry, err = time.Parse(time.RFC3339Nano, p.Expiry); err != nil {
			return fmt.Errorf("storage: stored policy %s: expiry %q: %w", p.ID, p.Expiry, err)
		}
	}
	if p.Permission != "" {
		s.Permissions = p.Permission
	}
	if s.Expiry.IsZero() || s.Permissions == "" {
		return authFailed("The signed expiry and permissions must be given by the SAS or by its stored access policy %q.", s.Identifier)
	}
	return nil
}
