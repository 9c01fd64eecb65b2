// Package storage is the contract shared by Weft's Azure-compatible storage
// services (blob, queue, table): the error answers the Azure SDKs expect, the
// authenticated request a service receives, and the front end that resolves
// the account, verifies Shared Key, Shared Key Lite and SAS signatures and
// calls the service. Besides the standard library it imports only the
// storage's own boltlog and vfs (replication.go: what a replica applies),
// never the fabric or the controller's state (docs/architecture.md).
package storage

import (
	"net/http"
)

// Service names one of the storage services; its value is the host label
// of host-style addresses (ACCOUNT.blob.DOMAIN).
type Service string

// The storage services.
const (
	Blob  Service = "blob"
	Queue Service = "queue"
	Table Service = "table"
)

// TargetVersion is the REST API version the services implement. Any
// syntactically valid x-ms-version is accepted, newer ones included: the
// SDKs move faster than servers, and refusing a newer version breaks them
// for no gain.
const TargetVersion = "2025-11-05"

// Handler is implemented by each service (blob, queue, table). The front
// end has authenticated the caller (or found it anonymous) before calling.
type Handler interface {
	ServeStorage(w http.ResponseWriter, r *http.Request, req *Request)
}

// CORSRule is one rule of a service's CORS settings, used by the front end
// to answer preflight requests and to decorate actual cross-origin answers.
type CORSRule struct {
	AllowedOrigins  []string // "*" or exact origins
	AllowedMethods  []string
	AllowedHeaders  []string // "*", exact names or prefixes ending in "*"
	ExposedHeaders  []string
	MaxAgeInSeconds int
}

// CORSRules is the optional interface a Handler implements when it keeps
// CORS rules (the blob service does). It returns nil when none are set.
type CORSRules interface {
	CORSRules(account string) []CORSRule
}

// Request is what the front end worked out before calling the service.
type Request struct {
	Service Service
	Account string
	// Path is what follows the account, unescaped, without a leading slash:
	// "" (the service itself), "container", "container/dir/blob.txt",
	// "queue/messages/ID", "Tables('t1')", "mytable(PartitionKey='a',RowKey='b')".
	Path      string
	Auth      Auth
	RequestID string // also sent as x-ms-request-id
}

// AuthKind is how a request was authenticated.
type AuthKind int

// The kinds of authentication.
const (
	Anonymous AuthKind = iota
	SharedKey
	SharedKeyLite
	AccountSAS
	ServiceSAS
	// Bearer is an OAuth token (see BearerToken); it grants only Get User
	// Delegation Key.
	Bearer
)

func (k AuthKind) String() string {
	switch k {
	case Anonymous:
		return "anonymous"
	case SharedKey:
		return "SharedKey"
	case SharedKeyLite:
		return "SharedKeyLite"
	case AccountSAS:
		return "account SAS"
	case ServiceSAS:
		return "service SAS"
	case Bearer:
		return "Bearer"
	}
	return "unknown"
}

// Auth is the verified identity of a request. SAS is set for AccountSAS and
// ServiceSAS; its signature, time window, protocol, source IP and (account
// SAS) service membership were checked by the front end.
type Auth struct {
	Kind AuthKind
	SAS  *SAS
	// Principal is the identity of a Bearer token.
	Principal Principal
}

// ResourceType is what an operation acts on, for account SAS resource
// types (srt: s, c, o).
type ResourceType byte

// The resource types of account SAS.
const (
	ResService   ResourceType = 's'
	ResContainer ResourceType = 'c'
	ResObject    ResourceType = 'o'
)

// ResponseOverrides returns the response headers a blob service SAS asks
// Get Blob and Get Blob Properties to answer with (rscc, rscd, rsce, rscl,
// rsct), or nil when there are none.
func (req *Request) ResponseOverrides() http.Header {
	if req.Auth.Kind != ServiceSAS || req.Auth.SAS == nil {
		return nil
	}
	s := req.Auth.SAS
	var h http.Header
	for _, o := range []struct{ name, v string }{
		{"Cache-Control", s.CacheControl}, {"Content-Disposition", s.ContentDisposition},
		{"Content-Encoding", s.ContentEncoding}, {"Content-Language", s.ContentLanguage},
		{"Content-Type", s.ContentType},
	} {
		if o.v != "" {
			if h == nil {
				h = http.Header{}
			}
			h.Set(o.name, o.v)
		}
	}
	return h
}
