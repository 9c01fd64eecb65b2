package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fuzzNow is the clock of the fuzzed front ends: the time the seed
// requests were signed at.
var fuzzNow = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

var fuzzServices = []Service{Blob, Queue, Table}

func fuzzFront(svc Service) *front {
	return &front{svc: svc, accounts: DevAccounts(), log: slog.New(slog.DiscardHandler), now: func() time.Time { return fuzzNow }}
}

// checkRefusal fails unless err is what the front end answers a bad
// request with: an *Error with a 4xx status.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 {
		t.Fatalf("refusal %v is not a 4xx storage error", err)
	}
}

// FuzzSharedKey reads any bytes as an HTTP request and authenticates it.
// Properties: a bad request is a 4xx storage error, never a panic; the
// canonical strings are the same on every computation (they are what a
// signature is checked against); and the request, signed with the
// account's key the way a client signs it, authenticates.
func FuzzSharedKey(f *testing.F) {
	for i, tc := range stringToSignCases {
		if tc.kind == SharedKey || tc.kind == SharedKeyLite {
			f.Add([]byte(tc.request), uint8(i%3), tc.kind == SharedKeyLite)
		}
	}
	key := DevAccounts()[DevAccount][0]
	f.Fuzz(func(t *testing.T, raw []byte, svcIdx uint8, lite bool) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		svc := fuzzServices[int(svcIdx)%len(fuzzServices)]
		fr := fuzzFront(svc)
		account, _, pathStyle := fr.resolve(r)
		if auth, err := fr.authenticate(context.Background(), r, account, pathStyle); err != nil {
			checkRefusal(t, err)
		} else if r.Header.Get("Authorization") != "" && auth.Kind != SharedKey && auth.Kind != SharedKeyLite {
			t.Fatalf("a request with an Authorization header authenticated as %v", auth.Kind)
		}

		r.Header.Set("x-ms-date", fuzzNow.Format(http.TimeFormat))
		first := sharedKeyStrings(r, svc, account, lite, pathStyle)
		if again := sharedKeyStrings(r, svc, account, lite, pathStyle); !cmp.Equal(first, again) {
			t.Fatalf("the canonical strings changed between two computations:\n%q\n%q", first, again)
		}
		if account != DevAccount {
			return
		}
		scheme := "SharedKey"
		if lite {
			scheme = "SharedKeyLite"
		}
		r.Header.Set("Authorization", scheme+" "+account+":"+base64.StdEncoding.EncodeToString(sign(key, first[0])))
		if _, err := fr.authenticate(context.Background(), r, account, pathStyle); err != nil {
			t.Fatalf("a request signed with the account key was refused: %v\nstring to sign: %q", err, first[0])
		}
	})
}

// FuzzSAS parses any query as a SAS. Properties: a bad SAS is a 403 storage
// error, never a panic; and a SAS that parses, signed with the account's
// key, passes the signature check on a request for path (it may still be
// refused for its times, address or protocol, but not its signature).
func FuzzSAS(f *testing.F) {
	for i, tc := range stringToSignCases {
		if tc.kind != AccountSAS && tc.kind != ServiceSAS {
			continue
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.request)))
		if err != nil {
			f.Fatal(err)
		}
		_, path, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		f.Add(r.URL.RawQuery, path, uint8(i%3))
	}
	f.Add("sv=2021-12-02&sr=b&sp=racwd&se=2026-11-23T09:00:00Z&spr=https,http&sig=x", "disks/vm1.vhd", uint8(0))
	f.Add("sv=2019-02-02&sr=d&sdd=2&sp=r&se=2026-11-23&sig=x", "c/a/b/c", uint8(0))
	key := DevAccounts()[DevAccount][0]
	f.Fuzz(func(t *testing.T, query, path string, svcIdx uint8) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		s, kind, e := parseSAS(q)
		if e != nil {
			if e.Status != http.StatusForbidden {
				t.Fatalf("parseSAS refused with %v, want 403", e)
			}
			return
		}
		if s.Identifier != "" {
			return // the policy lives in a service: TestStoredAccessPolicy covers it
		}
		svc := fuzzServices[int(svcIdx)%len(fuzzServices)]
		var sts string
		if kind == AccountSAS {
			sts = accountSASString(DevAccount, s, q)
		} else if sts, e = serviceSASString(svc, DevAccount, path, s, q); e != nil {
			if e.Status != http.StatusForbidden {
				t.Fatalf("serviceSASString refused with %v, want 403", e)
			}
			return
		}
		q.Set("sig", base64.StdEncoding.EncodeToString(sign(key, sts)))
		r := &http.Request{Method: http.MethodGet, Header: http.Header{}, RemoteAddr: "127.0.0.1:1",
			URL: &url.URL{Path: "/" + DevAccount + "/" + path, RawQuery: q.Encode()}}
		if _, err := fuzzFront(svc).authenticate(context.Background(), r, DevAccount, true); err != nil {
			checkRefusal(t, err)
			if strings.Contains(err.Error(), "Signature did not match") {
				t.Fatalf("a SAS signed with the account key failed its signature check: %v", err)
			}
		}
	})
}

// FuzzReadSignedIdentifiers reads any body as a Set ACL document.
// Properties: a bad body is a 400 or 413 storage error, never a panic; what
// is accepted keeps the documented limits; and what Get ACL then writes
// reads back as the same policies.
func FuzzReadSignedIdentifiers(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="utf-8"?><SignedIdentifiers>
	  <SignedIdentifier><Id>b</Id><AccessPolicy><Start>2030-01-02</Start><Expiry>2030-01-03T04:05:06.1234567+01:00</Expiry><Permission>rw</Permission></AccessPolicy></SignedIdentifier>
	  <SignedIdentifier><Id>a</Id><AccessPolicy/></SignedIdentifier>
	  <SignedIdentifier><Id>c</Id></SignedIdentifier>
	</SignedIdentifiers>`))
	f.Add([]byte(`<SignedIdentifiers><SignedIdentifier><Id>MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=</Id><AccessPolicy><Start>2009-09-28T08:49:37.0000000Z</Start><Expiry>2009-09-29T08:49:37.0000000Z</Expiry><Permission>rwd</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := ReadSignedIdentifiers(bytes.NewReader(body), "rwdl")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge) {
				t.Fatalf("refusal %v is not a 400 or 413 storage error", err)
			}
			return
		}
		if len(ids) > MaxSignedIdentifiers {
			t.Fatalf("%d identifiers accepted", len(ids))
		}
		for _, id := range ids {
			if id.ID == "" || len(id.ID) > MaxSignedIdentifierID {
				t.Fatalf("identifier %q accepted", id.ID)
			}
		}
		again, err := ReadSignedIdentifiers(bytes.NewReader(SignedIdentifiersXML(ids)), "rwdl")
		if err != nil {
			t.Fatalf("what Get ACL writes does not read back: %v\n%s", err, SignedIdentifiersXML(ids))
		}
		if len(ids) == 0 && len(again) == 0 {
			return
		}
		if diff := cmp.Diff(ids, again); diff != "" {
			t.Fatalf("policies changed on the way back (-read +reread):\n%s", diff)
		}
	})
}
