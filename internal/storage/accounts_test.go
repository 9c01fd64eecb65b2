package storage

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAccounts(t *testing.T) {
	k1, k2 := base64.StdEncoding.EncodeToString([]byte("first key")), base64.StdEncoding.EncodeToString([]byte("second key"))
	got, err := ParseAccounts("alpha:" + k1 + ":" + k2 + "; beta2:" + k1 + ";")
	if err != nil {
		t.Fatal(err)
	}
	want := StaticAccounts{"alpha": {[]byte("first key"), []byte("second key")}, "beta2": {[]byte("first key")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("accounts (-want +got):\n%s", diff)
	}
	if _, err := got.Keys(context.Background(), DevAccount); err != ErrNoAccount {
		t.Errorf("the development account is served beside a list: %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "none in the list"},
		{";", "none in the list"},
		{"Alpha:" + k1, `entry 1 ("Alpha"): the name must be 3 to 24 lowercase letters and digits`},
		{"alpha:" + k1 + ";ab:" + k1, `entry 2 ("ab")`},
		{"alpha:" + k1 + ";" + strings.Repeat("a", 25) + ":" + k1, "entry 2"},
		{"my-acct:" + k1, `entry 1 ("my-acct")`},
		{"alpha", "entry 1 (alpha): want NAME:KEY1 or NAME:KEY1:KEY2, got 0 keys"},
		{"alpha:" + k1 + ":" + k2 + ":" + k1, "got 3 keys"},
		{"alpha:" + k1 + ";beta:not base64!", "entry 2 (beta): key 1 is not base64"},
		{"alpha:" + k1 + ":", "entry 1 (alpha): key 2 is not base64"},
		{"alpha:" + k1 + ";alpha:" + k2, "entry 2 (alpha): the account is listed twice"},
	} {
		_, err := ParseAccounts(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAccounts(%q): %v, want an error with %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), k2) {
			t.Errorf("ParseAccounts(%q): the error shows a key: %v", tc.in, err)
		}
	}
}
