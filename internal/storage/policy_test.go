package storage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadSignedIdentifiers(t *testing.T) {
	body := `<?xml version="1.0" encoding="utf-8"?><SignedIdentifiers>
	  <SignedIdentifier><Id>b</Id><AccessPolicy><Start>2030-01-02</Start><Expiry>2030-01-03T04:05:06.1234567+01:00</Expiry><Permission>rw</Permission></AccessPolicy></SignedIdentifier>
	  <SignedIdentifier><Id>a</Id><AccessPolicy/></SignedIdentifier>
	  <SignedIdentifier><Id>c</Id></SignedIdentifier>
	</SignedIdentifiers>`
	got, err := ReadSignedIdentifiers(strings.NewReader(body), BlobPolicyPermissions)
	if err != nil {
		t.Fatal(err)
	}
	want := []SignedIdentifier{
		{ID: "b", Start: "2030-01-02T00:00:00.0000000Z", Expiry: "2030-01-03T03:05:06.1234567Z", Permission: "rw"},
		{ID: "a"}, {ID: "c"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("policies (-want +got):\n%s", diff)
	}
	if got, err := ReadSignedIdentifiers(strings.NewReader(" "), BlobPolicyPermissions); err != nil || got != nil {
		t.Fatalf("empty body = %v, %v; want none", got, err)
	}
	for _, bad := range []string{
		`<SignedIdentifiers><SignedIdentifier><Id>a</Id></SignedIdentifier><SignedIdentifier><Id>a</Id></SignedIdentifier></SignedIdentifiers>`,
		`<SignedIdentifiers><SignedIdentifier><Id></Id></SignedIdentifier></SignedIdentifiers>`,
		`<SignedIdentifiers><SignedIdentifier><Id>a</Id><AccessPolicy><Start>2030-13-01</Start></AccessPolicy></SignedIdentifier></SignedIdentifiers>`,
		`<SignedIdentifiers><SignedIdentifier><Id>a</Id><AccessPolicy><Permission>w</Permission></AccessPolicy></SignedIdentifier></SignedIdentifiers>`,
		`not xml`,
	} {
		if _, err := ReadSignedIdentifiers(strings.NewReader(bad), QueuePolicyPermissions); err == nil || err.(*Error).Status != 400 {
			t.Errorf("%s: %v, want a 400", bad, err)
		}
	}
}
