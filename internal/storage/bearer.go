package storage

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Bearer tokens stand in for Microsoft Entra ID, which Weft does not have.
// Azure takes an OAuth token naming a principal (oid) of a tenant (tid);
// Weft takes a JSON Web Token of that shape signed (HS256) with one of the
// account's keys, so whoever holds the key can give an application an
// identity that expires, without giving it the key. The identity has no
// role assignments: it may ask for a user delegation key (the one
// operation Azure reserves to OAuth) and nothing else.

const (
	// maxBearerToken bounds the Authorization header a token is read from.
	maxBearerToken = 8 << 10
	// bearerSkew is the clock skew a token's exp and nbf are allowed, as
	// Entra ID allows.
	bearerSkew = 5 * time.Minute
	// StorageAudience is the audience a bearer token names, Azure Storage's
	// resource ID (the SDKs ask for https://storage.azure.com/.default).
	StorageAudience = "https://storage.azure.com"
)

// Principal is the identity of a bearer token.
type Principal struct {
	ObjectID, TenantID string
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
}

type jwtClaims struct {
	Aud string `json:"aud"`
	OID string `json:"oid"`
	TID string `json:"tid"`
	Exp int64  `json:"exp"`
	Nbf int64  `json:"nbf,omitempty"`
}

// BearerToken returns a token for principal p of account, signed with key
// and valid until expiry: what the holder of the key hands an application
// so it can get user delegation keys.
func BearerToken(account string, key []byte, p Principal, expiry time.Time) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(jwtHeader{Alg: "HS256", Typ: "JWT"})
	c, _ := json.Marshal(jwtClaims{Aud: StorageAudience, OID: p.ObjectID, TID: p.TenantID, Exp: expiry.Unix()})
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	return signed + "." + enc.EncodeToString(sign(key, signed))
}

// errBearer is Azure's answer to a bearer token it cannot accept: 401
// InvalidAuthenticationInfo, with a WWW-Authenticate challenge.
func errBearer(detail string) *Error {
	return &Error{
		Status: http.StatusUnauthorized, Code: "InvalidAuthenticationInfo",
		Message:    "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
		Header:     http.Header{"Www-Authenticate": {"Bearer resource_id=" + StorageAudience}},
		AuthDetail: detail,
	}
}

// verifyBearer checks token (the Authorization header's value after
// "Bearer ") against the account's keys and returns its principal.
func verifyBearer(token string, keys [][]byte, now time.Time) (Principal, *Error) {
	if len(token) > maxBearerToken {
		return Principal{}, errBearer("The token is longer than 8 KiB.")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Principal{}, errBearer("The token is not a JSON Web Token (header.claims.signature).")
	}
	enc := base64.RawURLEncoding
	var h jwtHeader
	var c jwtClaims
	hb, err1 := enc.DecodeString(parts[0])
	cb, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		return Principal{}, errBearer("The token is malformed: its parts are not base64url-encoded JSON.")
	}
	// Only HS256: a token must not choose its own verification ("none").
	if h.Alg != "HS256" {
		return Principal{}, errBearer("The token's algorithm " + h.Alg + " is not supported; tokens are signed with HS256 under an account key.")
	}
	ok := false
	for _, k := range keys {
		if hmac.Equal(sign(k, parts[0]+"."+parts[1]), sig) {
			ok = true
		}
	}
	if !ok {
		return Principal{}, errBearer("Signature validation failed.")
	}
	if strings.TrimSuffix(c.Aud, "/") != StorageAudience {
		return Principal{}, errBearer("Audience validation failed. Audience did not match.")
	}
	if c.Exp == 0 || now.After(time.Unix(c.Exp, 0).Add(bearerSkew)) {
		return Principal{}, errBearer("Lifetime validation failed. The token is expired.")
	}
	if c.Nbf != 0 && now.Add(bearerSkew).Before(time.Unix(c.Nbf, 0)) {
		return Principal{}, errBearer("Lifetime validation failed. The token is not yet valid.")
	}
	if !validGUIDish(c.OID) || !validGUIDish(c.TID) {
		return Principal{}, errBearer("The token's oid and tid claims must be identifiers (letters, digits and dashes, at most 64).")
	}
	return Principal{ObjectID: c.OID, TenantID: c.TID}, nil
}

// validGUIDish reports whether v can be an object or tenant ID: Entra ID
// uses GUIDs; any short identifier of letters, digits and dashes is taken,
// since these are signed into SAS strings line by line.
func validGUIDish(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for _, r := range v {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
