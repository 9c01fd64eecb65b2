// Package sockdir picks a folder for an instance's unix sockets: a socket's
// path holds at most 107 bytes, and instance folders under a deep --data
// are longer.
package sockdir

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

// MaxPath is the longest path a unix socket may have (sun_path is 108 bytes
// with its terminating NUL).
const MaxPath = 107

// For returns dir when dir/name fits in a socket path, and otherwise a
// folder under the system's temporary folder named by a hash of key (the
// same folder every time for the same key). The caller creates it and
// removes it when the instance goes.
func For(dir, name, key string) string {
	if len(filepath.Join(dir, name)) <= MaxPath {
		return dir
	}
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(os.TempDir(), "weft-"+hex.EncodeToString(sum[:6]))
}
