package storage

import (
	"bufio"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// stringToSignCases are signed requests of each kind, as clients send
// them: TestStringToSign checks their canonical strings, and the fuzz
// targets start from them.
var stringToSignCases = []struct {
	name    string
	svc     Service
	kind    AuthKind
	request string
}{
	{"sharedkey-blob-put", Blob, SharedKey, "PUT /devstoreaccount1/photos/2024/cat%20one.jpg HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n" +
		"Content-Length: 11\r\nContent-Type: image/jpeg\r\nContent-MD5: sQqNsWTgdUEFt6mb5y4/5Q==\r\nx-ms-date: Sun, 22 Nov 2026 10:00:00 GMT\r\n" +
		"x-ms-version: 2026-12-06\r\nx-ms-blob-type: BlockBlob\r\nx-ms-meta-Owner:   weft   team  \r\nIf-None-Match: *\r\n\r\nhello world"},
	{"sharedkey-blob-list-host-style", Blob, SharedKey, "GET /photos?restype=container&comp=list&prefix=2024%2F&include=metadata&include=snapshots HTTP/1.1\r\n" +
		"Host: devstoreaccount1.blob.weft.local:10000\r\nx-ms-date: Sun, 22 Nov 2026 10:00:00 GMT\r\nx-ms-version: 2025-11-05\r\nContent-Length: 0\r\n\r\n"},
	{"sharedkey-blob-old-version", Blob, SharedKey, "GET /devstoreaccount1/photos?restype=container&comp=list HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n" +
		"x-ms-date: Sun, 22 Nov 2026 10:00:00 GMT\r\nx-ms-version: 2009-07-17\r\nContent-Length: 0\r\n\r\n"},
	{"sharedkey-queue-put-message", Queue, SharedKey, "POST /devstoreaccount1/orders/messages?visibilitytimeout=5&messagettl=-1 HTTP/1.1\r\nHost: 127.0.0.1:10001\r\n" +
		"Content-Length: 52\r\nContent-Type: application/xml\r\nx-ms-date: Sun, 22 Nov 2026 10:00:00 GMT\r\nx-ms-version: 2018-03-28\r\n\r\n" +
		"<QueueMessage><MessageText>hi</MessageText></QueueMessage>"},
	{"sharedkeylite-blob", Blob, SharedKeyLite, "GET /devstoreaccount1/photos/cat.jpg?comp=metadata&timeout=30 HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n" +
		"x-ms-date: Sun, 22 Nov 2026 10:00:00 GMT\r\nx-ms-version: 2025-11-05\r\n\r\n"},
	{"sharedkey-table-insert", Table, SharedKey, "POST /devstoreaccount1/mytable HTTP/1.1\r\nHost: 127.0.0.1:10002\r\n" +
		"Content-Type: application/json\r\nContent-Length: 2\r\nx-ms-date: Sun, 22 Nov 2026 10:00:00 GMT\r\nx-ms-version: 2019-02-02\r\n\r\n{}"},
	{"sharedkeylite-table-entity", Table, SharedKeyLite, "GET /devstoreaccount1/mytable(PartitionKey='a',RowKey='b')?$select=Name HTTP/1.1\r\n" +
		"Host: 127.0.0.1:10002\r\nx-ms-date: Sun, 22 Nov 2026 10:00:00 GMT\r\nx-ms-version: 2019-02-02\r\n\r\n"},
	{"sharedkey-table-acl", Table, SharedKey, "GET /devstoreaccount1/mytable?comp=acl HTTP/1.1\r\nHost: 127.0.0.1:10002\r\n" +
		"Date: Sun, 22 Nov 2026 10:00:00 GMT\r\nx-ms-version: 2019-02-02\r\n\r\n"},
	{"accountsas-2026", Blob, AccountSAS, "GET /devstoreaccount1/photos/cat.jpg?sv=2026-12-06&ss=bqt&srt=sco&sp=rwdlacup&st=2026-11-22T09%3A00%3A00Z&se=2026-11-23T09%3A00%3A00Z&sip=127.0.0.1-127.0.0.255&spr=https%2Chttp&ses=scope1&sig=x HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n\r\n"},
	{"accountsas-2019", Table, AccountSAS, "GET /devstoreaccount1/Tables?sv=2019-02-02&ss=t&srt=sco&sp=rl&se=2026-11-23T09%3A00%3A00Z&sig=x HTTP/1.1\r\nHost: 127.0.0.1:10002\r\n\r\n"},
	{"servicesas-blob-overrides", Blob, ServiceSAS, "GET /devstoreaccount1/photos/2024/cat%20one.jpg?sv=2026-12-06&sr=b&sp=r&se=2026-11-23T09%3A00%3A00Z&spr=https%2Chttp&rscc=no-cache&rscd=attachment%3B%20filename%3Dcat.jpg&rsct=image%2Fjpeg&sig=x HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n\r\n"},
	{"servicesas-blob-snapshot-2019", Blob, ServiceSAS, "GET /devstoreaccount1/photos/cat.jpg?snapshot=2026-11-22T09%3A00%3A00.0000000Z&sv=2019-12-12&sr=bs&sp=r&se=2026-11-23T09%3A00%3A00Z&sig=x HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n\r\n"},
	{"servicesas-container-2015", Blob, ServiceSAS, "GET /devstoreaccount1/photos?restype=container&comp=list&sv=2015-04-05&sr=c&sp=rl&se=2026-11-23T09%3A00%3A00Z&sig=x HTTP/1.1\r\nHost: 127.0.0.1:10000\r\n\r\n"},
	{"servicesas-queue", Queue, ServiceSAS, "GET /devstoreaccount1/orders/messages?sv=2020-02-10&sp=rp&se=2026-11-23T09%3A00%3A00Z&sip=10.0.0.1&sig=x HTTP/1.1\r\nHost: 127.0.0.1:10001\r\n\r\n"},
	{"servicesas-table-range", Table, ServiceSAS, "GET /devstoreaccount1/MyTable()?sv=2019-02-02&tn=MyTable&sp=raud&se=2026-11-23T09%3A00%3A00Z&spk=a&srk=1&epk=m&erk=9&sig=x HTTP/1.1\r\nHost: 127.0.0.1:10002\r\n\r\n"},
}

// TestStringToSign checks the canonical strings against golden files,
// which are meant to be read next to the Azure documentation: a change in
// them is a change in what clients must sign.
func TestStringToSign(t *testing.T) {
	for _, tc := range stringToSignCases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tc.request)))
			if err != nil {
				t.Fatal(err)
			}
			f := &front{svc: tc.svc}
			account, path, pathStyle := f.resolve(r)
			var got string
			switch tc.kind {
			case SharedKey, SharedKeyLite:
				got = sharedKeyStrings(r, tc.svc, account, tc.kind == SharedKeyLite, pathStyle)[0]
			case AccountSAS, ServiceSAS:
				s, kind, e := parseSAS(r.URL.Query())
				if e != nil {
					t.Fatal(e)
				}
				if kind != tc.kind {
					t.Fatalf("parsed as %v, want %v", kind, tc.kind)
				}
				if kind == AccountSAS {
					got = accountSASString(account, s, r.URL.Query())
				} else if got, e = serviceSASString(tc.svc, account, path, s, r.URL.Query()); e != nil {
					t.Fatal(e)
				}
			}
			golden := filepath.Join("testdata", "stringtosign", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("string to sign (-golden +got):\n%s", diff)
			}
		})
	}
}

func TestAllow(t *testing.T) {
	acct := &SAS{Services: "b", ResourceTypes: "co", Permissions: "rl"}
	svc := &SAS{Resource: "c", Permissions: "rw"}
	for _, tc := range []struct {
		name string
		auth Auth
		perm byte
		rt   ResourceType
		code string
	}{
		{"shared key does anything", Auth{Kind: SharedKey}, 'd', ResService, ""},
		{"lite does anything", Auth{Kind: SharedKeyLite}, 'w', ResObject, ""},
		{"account sas read object", Auth{Kind: AccountSAS, SAS: acct}, 'r', ResObject, ""},
		{"account sas list container", Auth{Kind: AccountSAS, SAS: acct}, 'l', ResContainer, ""},
		{"account sas without service type", Auth{Kind: AccountSAS, SAS: acct}, 'l', ResService, "AuthorizationResourceTypeMismatch"},
		{"account sas without write", Auth{Kind: AccountSAS, SAS: acct}, 'w', ResObject, "AuthorizationPermissionMismatch"},
		{"service sas write", Auth{Kind: ServiceSAS, SAS: svc}, 'w', ResObject, ""},
		{"service sas delete", Auth{Kind: ServiceSAS, SAS: svc}, 'd', ResObject, "AuthorizationPermissionMismatch"},
		{"service sas on the service", Auth{Kind: ServiceSAS, SAS: svc}, 'r', ResService, "AuthorizationResourceTypeMismatch"},
		{"anonymous", Auth{}, 'r', ResObject, "NoAuthenticationInformation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Request{Auth: tc.auth}).Allow(tc.perm, tc.rt)
			got := ""
			if err != nil {
				got = err.(*Error).Code
			}
			if got != tc.code {
				t.Fatalf("Allow = %v, want %q", err, tc.code)
			}
		})
	}
}
