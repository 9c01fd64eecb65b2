package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TokensFile is where API tokens are kept for the user, by API address
// ({"http://127.0.0.1:7070": "..."}), under the user's config folder
// ($XDG_CONFIG_HOME or ~/.config): a server without TLS writes its admin
// token there for the user who started it, and a client given no token
// uses the one kept for the address it calls. Besides the addresses, the
// key "current" holds the address (or comma-separated addresses) of the
// last weft login, which the CLI calls when no address is given; no
// address is spelled "current" (normalize adds a scheme).
func TokensFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("client: tokens: %w", err)
	}
	return filepath.Join(dir, "weft", "tokens.json"), nil
}

// currentKey is TokensFile's entry for the address of the last login.
const currentKey = "current"

// SaveToken keeps token for the API at addr in TokensFile (0600, in a
// 0700 folder), beside the others. Processes saving at once take turns.
func SaveToken(addr, token string) error {
	return updateTokens(func(tokens map[string]string) { tokens[normalize(addr)] = token })
}

// SaveLogin keeps token for each of the comma-separated addresses addrs
// and makes addrs the current address (CurrentAddr).
func SaveLogin(addrs, token string) error {
	list := splitAddrs(addrs)
	if len(list) == 0 {
		return errors.New("client: tokens: no address to sign in to")
	}
	return updateTokens(func(tokens map[string]string) {
		for _, a := range list {
			tokens[a] = token
		}
		tokens[currentKey] = strings.Join(list, ",")
	})
}

// ForgetToken removes the tokens kept for each of the comma-separated
// addresses addrs, and the current address when it is addrs. It reports
// whether there was anything to remove.
func ForgetToken(addrs string) (bool, error) {
	list := splitAddrs(addrs)
	found := false
	err := updateTokens(func(tokens map[string]string) {
		for _, a := range list {
			if _, ok := tokens[a]; ok {
				delete(tokens, a)
				found = true
			}
		}
		if tokens[currentKey] == strings.Join(list, ",") {
			delete(tokens, currentKey)
		}
	})
	return found, err
}

// CurrentAddr is the address the last weft login signed in to, or "".
func CurrentAddr() string { return savedEntry(currentKey) }

// updateTokens changes TokensFile under its lock, and writes it whole:
// a reader sees the old file or the new one, never a part.
func updateTokens(change func(map[string]string)) error {
	path, err := TokensFile()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("client: tokens: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("client: tokens: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("client: tokens: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	tokens, err := readTokens(path)
	if err != nil {
		return err
	}
	change(tokens)
	data, err := json.MarshalIndent(tokens, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("client: tokens: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("client: tokens: %w", err)
	}
	return nil
}

func readTokens(path string) (map[string]string, error) {
	tokens := map[string]string{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tokens, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: tokens: %w", err)
	}
	if err := json.Unmarshal(data, &tokens); err != nil {
		return nil, fmt.Errorf("client: tokens: %s: %w", path, err)
	}
	return tokens, nil
}

// savedTokens reads TokensFile again only when it changed: SaveToken
// renames a new file into place, so a new inode tells (file times may be
// too coarse to).
var savedTokens struct {
	sync.Mutex
	inode   uint64
	modTime time.Time
	tokens  map[string]string
}

// SavedToken is the token TokensFile keeps for addr, or "".
func SavedToken(addr string) string { return savedEntry(normalize(addr)) }

// savedEntry is TokensFile's entry key, or "".
func savedEntry(key string) string {
	path, err := TokensFile()
	if err != nil {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	savedTokens.Lock()
	defer savedTokens.Unlock()
	var inode uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		inode = st.Ino
	}
	if savedTokens.tokens == nil || inode != savedTokens.inode || !fi.ModTime().Equal(savedTokens.modTime) {
		tokens, err := readTokens(path)
		if err != nil {
			return ""
		}
		savedTokens.tokens, savedTokens.inode, savedTokens.modTime = tokens, inode, fi.ModTime()
	}
	return savedTokens.tokens[key]
}
