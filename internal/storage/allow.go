package storage

import (
	"net/http"
	"strings"
)

// Allow checks that the authenticated caller may do an operation needing
// permission letter perm ('r','a','c','w','d','l','u','p','x','t', ...) on
// a resource of type rt at req.Path.
//
// Shared Key (and Lite) may do anything. An account SAS needs rt in srt and
// perm in sp (its service was checked by the front end). A service SAS
// needs perm in sp and may not act on the service itself; its signature
// already binds it to its container, blob or queue, and the table service
// checks a table SAS's table and key range itself. Anonymous callers get
// 401 NoAuthenticationInformation; the blob service allows anonymous reads
// of public containers itself, before calling Allow.
//
// The error is an *Error: 403 AuthorizationPermissionMismatch,
// AuthorizationResourceTypeMismatch, or 401 NoAuthenticationInformation.
func (req *Request) Allow(perm byte, rt ResourceType) error {
	switch req.Auth.Kind {
	case SharedKey, SharedKeyLite:
		return nil
	case AccountSAS, ServiceSAS:
		s := req.Auth.SAS
		if s == nil {
			return authFailed("no SAS on a SAS-authenticated request")
		}
		if req.Auth.Kind == AccountSAS && !strings.ContainsRune(s.ResourceTypes, rune(rt)) {
			return resourceTypeMismatch()
		}
		if req.Auth.Kind == ServiceSAS && rt == ResService {
			return resourceTypeMismatch()
		}
		if !strings.ContainsRune(s.Permissions, rune(perm)) {
			return &Error{Status: http.StatusForbidden, Code: "AuthorizationPermissionMismatch", Message: "This request is not authorized to perform this operation using this permission."}
		}
		return nil
	}
	return errAnonymous()
}

// errAnonymous refuses a request that needs credentials and has none.
func errAnonymous() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "NoAuthenticationInformation", Message: "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."}
}

func resourceTypeMismatch() *Error {
	return &Error{Status: http.StatusForbidden, Code: "AuthorizationResourceTypeMismatch", Message: "This request is not authorized to perform this operation using this resource type."}
}

// AllowACL checks that the caller may read (perm 'r') or change (perm
// 'w') the stored access policies of a container, queue or table: Shared
// Key, or an account SAS with that permission on containers. A service SAS
// never may, or a SAS could widen its own policy: 403 AuthorizationFailure.
func (req *Request) AllowACL(perm byte) error {
	if req.Auth.Kind == ServiceSAS {
		return Errorf(http.StatusForbidden, "AuthorizationFailure", "This request is not authorized to perform this operation.")
	}
	return req.Allow(perm, ResContainer)
}

// AllowCreate checks that the caller may create a queue or a table. The
// reference's account SAS table gives Create Queue and Create Table to w
// on containers; c is taken too, as the emulator takes it, though the
// reference keeps c for blobs and files.
func (req *Request) AllowCreate() error {
	if err := req.Allow('w', ResContainer); err == nil {
		return nil
	}
	return req.Allow('c', ResContainer)
}
