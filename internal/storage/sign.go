package storage

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"time"
)

// SignVersion is the API version Weft's own clients send.
const SignVersion = "2021-12-02"

// SignSharedKey signs r for the blob or queue service with Shared Key under
// key, as Weft's own components do when they store things in the storage
// service (images, disks). It sets x-ms-date, x-ms-version (unless set) and
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
