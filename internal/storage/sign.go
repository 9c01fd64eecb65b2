package storage

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SignVersion is the API version Weft's own clients send.
const SignVersion = "2021-12-02"

// SignSharedKey signs r for svc with Shared Key under key, as Weft's own
// components do when they store things in the storage service (images,
// disks), and as the conformance tests sign their raw requests. It sets x-ms-date, x-ms-version (unless set) and
// Authorization; set every other header, Content-Length included, first.
func SignSharedKey(r *http.Request, svc Service, account string, key []byte) {
	r.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	if r.Header.Get("x-ms-version") == "" {
		r.Header.Set("x-ms-version", SignVersion)
	}
	if r.ContentLength > 0 {
		r.Header.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	s := stringToSign(r, svc, account, rawPath(r), "", r.Header.Get("x-ms-version"), false)
	r.Header.Del("Content-Length") // net/http sends it from r.ContentLength
	r.Header.Set("Authorization", "SharedKey "+account+":"+base64.StdEncoding.EncodeToString(sign(key, s)))
}

// BlobSAS returns the query of a service SAS for one blob with the given
// permissions (letters of "racwd"), valid until expiry: what the controller
// hands a node so it can use one disk or file and nothing else.
func BlobSAS(account string, key []byte, container, blob, perms string, expiry time.Time) url.Values {
	q := url.Values{
		"sv": {SignVersion}, "sp": {perms}, "sr": {"b"},
		"se": {expiry.UTC().Format(time.RFC3339)}, "spr": {"https,http"},
	}
	s := &SAS{Version: SignVersion, Permissions: perms, Resource: "b", Protocol: "https,http"}
	str, _ := serviceSASString(Blob, account, container+"/"+blob, s, q)
	q.Set("sig", base64.StdEncoding.EncodeToString(sign(key, str)))
	return q
}
