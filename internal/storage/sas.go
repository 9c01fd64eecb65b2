package storage

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SAS is a parsed shared access signature. The front end fills it in and
// verifies it; services read it to check what the signature grants
// (Request.Allow) and, for table, the key range.
// https://learn.microsoft.com/rest/api/storageservices/create-account-sas
// https://learn.microsoft.com/rest/api/storageservices/create-service-sas
type SAS struct {
	Version       string // sv
	Services      string // ss (account SAS): letters b, q, t, f
	ResourceTypes string // srt (account SAS): letters s, c, o
	Permissions   string // sp
	Start         time.Time
	Expiry        time.Time
	IP            string // sip: one address or "low-high"
	Protocol      string // spr: "https" or "https,http"
	Identifier    string // si: a stored access policy (service SAS), which fills in st, se and sp

	Resource        string // sr (blob service SAS): c, b, bs, bv, d
	DirectoryDepth  int    // sdd, for sr=d
	EncryptionScope string // ses

	// Response header overrides (blob service SAS).
	CacheControl, ContentDisposition, ContentEncoding, ContentLanguage, ContentType string

	// Table service SAS: the table and the inclusive key range.
	TableName                      string
	StartPK, StartRK, EndPK, EndRK string

	// Delegation is set for a user delegation SAS (blob service), signed
	// with a key from Get User Delegation Key instead of the account key.
	Delegation *Delegation

	sig string
}

// parseSAS reads a SAS from a query; kind tells account from service SAS.
func parseSAS(q url.Values) (*SAS, AuthKind, *Error) {
	s := &SAS{
		Version: q.Get("sv"), Services: q.Get("ss"), ResourceTypes: q.Get("srt"), Permissions: q.Get("sp"),
		IP: q.Get("sip"), Protocol: q.Get("spr"), Identifier: q.Get("si"), Resource: q.Get("sr"),
		EncryptionScope: q.Get("ses"),
		CacheControl:    q.Get("rscc"), ContentDisposition: q.Get("rscd"), ContentEncoding: q.Get("rsce"),
		ContentLanguage: q.Get("rscl"), ContentType: q.Get("rsct"),
		TableName: q.Get("tn"), StartPK: q.Get("spk"), StartRK: q.Get("srk"), EndPK: q.Get("epk"), EndRK: q.Get("erk"),
		sig: q.Get("sig"),
	}
	kind := ServiceSAS
	if q.Has("ss") || q.Has("srt") {
		kind = AccountSAS
	}
	if s.Version == "" {
		return nil, 0, authFailed("sv is mandatory. Cannot be empty")
	}
	if !validVersion(s.Version) {
		return nil, 0, authFailed("sv %q is not a valid version (YYYY-MM-DD)", s.Version)
	}
	var e *Error
	if s.Delegation, e = parseDelegation(q); e != nil {
		return nil, 0, e
	}
	if s.Delegation != nil && (kind == AccountSAS || s.Identifier != "") {
		return nil, 0, authFailed("A user delegation SAS is a service SAS and cannot name a stored access policy (si).")
	}
	if kind == AccountSAS && s.Identifier != "" {
		return nil, 0, authFailed("An account SAS cannot name a stored access policy (si=%s).", s.Identifier)
	}
	if kind == AccountSAS && (s.Services == "" || s.ResourceTypes == "") {
		return nil, 0, authFailed("ss and srt are mandatory for an account SAS")
	}
	// With si, the stored access policy may give sp and se (applyPolicy).
	if s.Permissions == "" && s.Identifier == "" {
		return nil, 0, authFailed("sp is mandatory. Cannot be empty")
	}
	if q.Get("se") == "" && s.Identifier == "" {
		return nil, 0, authFailed("se is mandatory. Cannot be empty")
	}
	var err error
	if se := q.Get("se"); se != "" {
		if s.Expiry, err = parseSASTime(se); err != nil {
			return nil, 0, authFailed("se %q is not a valid ISO 8601 time", se)
		}
	}
	if st := q.Get("st"); st != "" {
		if s.Start, err = parseSASTime(st); err != nil {
			return nil, 0, authFailed("st %q is not a valid ISO 8601 time", st)
		}
	}
	if d := q.Get("sdd"); d != "" {
		if s.DirectoryDepth, err = strconv.Atoi(d); err != nil || s.DirectoryDepth < 0 {
			return nil, 0, authFailed("sdd %q is not a valid directory depth", d)
		}
	}
	switch s.Protocol {
	case "", "https", "https,http", "http,https":
	default:
		return nil, 0, authFailed("spr %q is not a valid signed protocol", s.Protocol)
	}
	return s, kind, nil
}

// parseSASTime accepts the ISO 8601 forms Azure documents for st and se.
func parseSASTime(v string) (time.Time, error) {
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// accountSASString is the account SAS string-to-sign for its version.
func accountSASString(account string, s *SAS, q url.Values) string {
	fields := []string{account, s.Permissions, s.Services, s.ResourceTypes, q.Get("st"), q.Get("se"), s.IP, s.Protocol, s.Version}
	if versionAtLeast(s.Version, "2020-12-06") {
		fields = append(fields, s.EncryptionScope)
	}
	return strings.Join(fields, "\n") + "\n"
}

// serviceSASString is the service SAS string-to-sign for svc and the SAS's
// version. The canonicalized resource comes from the request (blob, queue)
// or the signed table name, so a SAS signed for one resource fails for any
// other.
func serviceSASString(svc Service, account, path string, s *SAS, q url.Values) (string, *Error) {
	v := s.Version
	prefix := ""
	if versionAtLeast(v, "2015-02-21") {
		prefix = "/" + string(svc)
	}
	base := []string{s.Permissions, q.Get("st"), q.Get("se")}
	withIP := versionAtLeast(v, "2015-04-05")
	var fields []string
	switch svc {
	case Blob:
		res, e := blobSASResource(prefix, account, path, s)
		if e != nil {
			return "", e
		}
		fields = append(base, res, s.Identifier)
		if withIP {
			fields = append(fields, s.IP, s.Protocol)
		}
		if versionAtLeast(v, "2012-02-12") {
			fields = append(fields, v)
		}
		if versionAtLeast(v, "2018-11-09") {
			snap := ""
			switch s.Resource {
			case "bs":
				snap = q.Get("snapshot")
			case "bv":
				snap = q.Get("versionid")
			}
			fields = append(fields, s.Resource, snap)
		}
		if versionAtLeast(v, "2020-12-06") {
			fields = append(fields, s.EncryptionScope)
		}
		if versionAtLeast(v, "2013-08-15") {
			fields = append(fields, s.CacheControl, s.ContentDisposition, s.ContentEncoding, s.ContentLanguage, s.ContentType)
		}
	case Queue:
		queue, _, _ := strings.Cut(path, "/")
		fields = append(base, prefix+"/"+account+"/"+queue, s.Identifier)
		if withIP {
			fields = append(fields, s.IP, s.Protocol)
		}
		fields = append(fields, v)
	case Table:
		if s.TableName == "" {
			return "", authFailed("tn is mandatory for a table service SAS")
		}
		fields = append(base, prefix+"/"+account+"/"+strings.ToLower(s.TableName), s.Identifier)
		if withIP {
			fields = append(fields, s.IP, s.Protocol)
		}
		fields = append(fields, v, s.StartPK, s.StartRK, s.EndPK, s.EndRK)
	default:
		return "", authFailed("service SAS is not supported for %s", svc)
	}
	return strings.Join(fields, "\n"), nil
}

// blobSASResource is the canonicalized resource a blob SAS signs for the
// request's path: its container, blob or directory, by sr.
func blobSASResource(prefix, account, path string, s *SAS) (string, *Error) {
	container, blob, _ := strings.Cut(path, "/")
	res := prefix + "/" + account + "/" + container
	switch s.Resource {
	case "c":
	case "b", "bs", "bv":
		res += "/" + blob
	case "d":
		parts := strings.Split(blob, "/")
		if s.DirectoryDepth == 0 || s.DirectoryDepth > len(parts) {
			return "", authFailed("sdd %d does not fit the blob path %q", s.DirectoryDepth, blob)
		}
		res += "/" + strings.Join(parts[:s.DirectoryDepth], "/")
	default:
		return "", authFailed("sr %q is not a valid signed resource for the blob service (c, b, bs, bv, d)", s.Resource)
	}
	return res, nil
}

// checkSAS verifies what the front end can check without the operation:
// the time window, the protocol, the caller's address and, for an account
// SAS, that it is valid for this service.
func checkSAS(r *http.Request, svc Service, kind AuthKind, s *SAS, now time.Time) *Error {
	if (!s.Start.IsZero() && now.Before(s.Start)) || !now.Before(s.Expiry) {
		start := ""
		if !s.Start.IsZero() {
			start = s.Start.UTC().Format(http.TimeFormat)
		}
		return authFailed("Signed expiry time [%s] must be after signed start time [%s] and the current time [%s] between them",
			s.Expiry.UTC().Format(http.TimeFormat), start, now.UTC().Format(http.TimeFormat))
	}
	if s.Protocol == "https" && r.TLS == nil {
		return &Error{Status: http.StatusForbidden, Code: "AuthorizationProtocolMismatch", Message: "This request is not authorized to perform this operation using this protocol."}
	}
	if s.IP != "" && !ipInRange(r.RemoteAddr, s.IP) {
		return &Error{Status: http.StatusForbidden, Code: "AuthorizationSourceIPMismatch", Message: "This request is not authorized to perform this operation using this source IP " + hostOf(r.RemoteAddr) + "."}
	}
	if kind == AccountSAS && !strings.ContainsRune(s.Services, serviceLetter(svc)) {
		return &Error{Status: http.StatusForbidden, Code: "AuthorizationServiceMismatch", Message: "This request is not authorized to perform this operation using this service."}
	}
	return nil
}

func serviceLetter(svc Service) rune {
	switch svc {
	case Blob:
		return 'b'
	case Queue:
		return 'q'
	case Table:
		return 't'
	}
	return 0
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// ipInRange reports whether the caller's address lies in sip ("a" or "a-b").
func ipInRange(remote, sip string) bool {
	ip := net.ParseIP(hostOf(remote))
	if ip == nil {
		return false
	}
	lo, hi, found := strings.Cut(sip, "-")
	if !found {
		hi = lo
	}
	l, h := net.ParseIP(lo), net.ParseIP(hi)
	if l == nil || h == nil {
		return false
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
		l, h = l.To4(), h.To4()
		if l == nil || h == nil {
			return false
		}
	}
	return compareIP(ip, l) >= 0 && compareIP(ip, h) <= 0
}

func compareIP(a, b net.IP) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}
