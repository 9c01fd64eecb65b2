package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/weftcloud/weft/internal/storage"
)

// weft storage takes its accounts from --accounts or, without it, from
// WEFT_STORAGE_ACCOUNTS, in the emulator's form; a bad entry stops it with
// an error naming the entry.
func TestStorageAccountsFlag(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		args      []string
		want      string
	}{
		{"flag", "", []string{"--accounts", "alpha:" + storage.DevKey + ";x:" + storage.DevKey}, `entry 2 ("x")`},
		{"environment", "Alpha:" + storage.DevKey, nil, `entry 1 ("Alpha")`},
		{"the flag wins", "Alpha:" + storage.DevKey, []string{"--accounts", "beta:nokey"}, "entry 1 (beta): key 1 is not base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WEFT_STORAGE_ACCOUNTS", tc.env)
			var out, errb bytes.Buffer
			code := newApp(&out, &errb).execute(context.Background(), append([]string{"storage", "--data", t.TempDir()}, tc.args...))
			if code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure naming %s", code, errb.String(), tc.want)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := newApp(&out, &errb).execute(context.Background(), []string{"storage", "--help"}); code != 0 || !strings.Contains(out.String(), "AZURITE_ACCOUNTS") || !strings.Contains(out.String(), "WEFT_STORAGE_ACCOUNTS") {
		t.Errorf("storage --help (exit %d) does not describe --accounts: %s", code, out.String())
	}
}
