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

// TestLogin: a login keeps the token for each address of a list and
// makes the list current; a logout forgets them and the current address,
// and leaves the other addresses' tokens.
func TestLogin(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if err := SaveToken("127.0.0.1:7070", "admin"); err != nil {
		t.Fatal(err)
	}
	if got := CurrentAddr(); got != "" {
		t.Errorf("current address before any login: %q", got)
	}
	if err := SaveLogin("https://a:7070, b:7070/", "wft_x"); err != nil {
		t.Fatal(err)
	}
	if got, want := CurrentAddr(), "https://a:7070,http://b:7070"; got != want {
		t.Errorf("current address %q, want %q", got, want)
	}
	for _, addr := range []string{"https://a:7070", "http://b:7070"} {
		if got := SavedToken(addr); got != "wft_x" {
			t.Errorf("token for %s: %q", addr, got)
		}
	}
	if got := SavedToken("current"); got != "" {
		t.Errorf("the current entry reads as an address's token: %q", got)
	}
	found, err := ForgetToken("https://a:7070,b:7070")
	if err != nil || !found {
		t.Fatalf("logout: %v, found %v", err, found)
	}
	if got := CurrentAddr(); got != "" {
		t.Errorf("current address after logout: %q", got)
	}
	if got := SavedToken("http://b:7070"); got != "" {
		t.Errorf("token after logout: %q", got)
	}
	if got := SavedToken("http://127.0.0.1:7070"); got != "admin" {
		t.Errorf("another address's token after logout: %q", got)
	}
	if found, err := ForgetToken("b:7070"); err != nil || found {
		t.Errorf("second logout: %v, found %v", err, found)
	}
	if err := SaveLogin(" , ", "wft_x"); err == nil {
		t.Error("a login without an address was kept")
	}
}
