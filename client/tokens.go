package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// TokensFile is where API tokens are kept for the user, by API address
// ({"http://127.0.0.1:7070": "..."}), under the user's config folder
// ($XDG_CONFIG_HOME or ~/.config): a server without TLS writes its admin
// token there for the user who started it, and a client given no token
// uses the one kept for the address it calls.
func TokensFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("client: tokens: %w", err)
	}
	return filepath.Join(dir, "weft", "tokens.json"), nil
}

// SaveToken keeps token for the API at addr in TokensFile (0600, in a
// 0700 folder), beside the others. Processes saving at once take turns.
func SaveToken(addr, token string) error {
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
	tokens[normalize(addr)] = token
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
func SavedToken(addr string) string {
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
	return savedTokens.tokens[normalize(addr)]
}
