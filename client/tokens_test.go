package client

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestSavedTokens: servers starting at once each keep their token (none
// is lost to another's write), the file is private, and a client finds a
// token by its address however it is spelled, and sees a new one at once.
func TestSavedTokens(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := SaveToken(fmt.Sprintf("http://127.0.0.1:%d", 7000+i), fmt.Sprintf("token-%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range 20 {
		if got, want := SavedToken(fmt.Sprintf("http://127.0.0.1:%d", 7000+i)), fmt.Sprintf("token-%d", i); got != want {
			t.Errorf("address %d: %q, want %q", i, got, want)
		}
	}
	path, err := TokensFile()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens file: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("tokens folder: %v %v", fi.Mode(), err)
	}
	if got := SavedToken("127.0.0.1:7003/"); got != "token-3" {
		t.Errorf("an address without its scheme: %q", got)
	}
	if err := SaveToken("127.0.0.1:7003", "replaced"); err != nil {
		t.Fatal(err)
	}
	if got := New("127.0.0.1:7003").tokenFor("http://127.0.0.1:7003"); got != "replaced" {
		t.Errorf("after a new token was kept: %q", got)
	}
	if got := New("127.0.0.1:7003").WithToken("given").tokenFor("http://127.0.0.1:7003"); got != "given" {
		t.Errorf("a given token: %q, want it to win", got)
	}
	if got := SavedToken("http://127.0.0.1:9999"); got != "" {
		t.Errorf("an address with no token: %q", got)
	}
}
