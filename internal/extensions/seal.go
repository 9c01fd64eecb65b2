package extensions

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/pki"
)

// Sealer encrypts protected settings with a key only the servers hold
// (AES-256-GCM), bound to where they belong (the tenant, service, role and
// extension, as additional data), so a sealed value copied into another
// role or tenant does not open. The nonce is derived from the key, that
// binding and the settings (a synthetic IV): the same settings seal to the
// same text, so deploying an unchanged model changes nothing, and the
// only thing the sealed text shows is whether two values are equal.
type Sealer struct {
	aead cipher.AEAD
	mac  []byte // key of the nonce's HMAC
}

const sealPrefix = "v1:"

// keyLabel derives the sealing key from the CA's key.
const keyLabel = "weft extension protected settings v1"

// KeyFile is the sealing key of a server without TLS, in its data folder.
const KeyFile = "extensions.key"

// ServerKey is the servers' sealing key. With a TLS folder (every server
// of a cluster has the same one, with the CA's key) it is derived from
// the CA's key, so every server has it and no state or snapshot holds it;
// without TLS (one server) it is KeyFile in the data folder, made on first
// use (0600).
func ServerKey(tlsDir, dataDir string) ([]byte, error) {
	if tlsDir != "" {
		pem, err := os.ReadFile(filepath.Join(tlsDir, pki.CAKeyFile))
		if err != nil {
			return nil, fmt.Errorf("extensions: sealing key: %w", err)
		}
		m := hmac.New(sha256.New, pem)
		m.Write([]byte(keyLabel))
		return m.Sum(nil), nil
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := os.ReadFile(path)
	if err == nil && len(key) == 32 {
		return key, nil
	}
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("extensions: sealing key %s: not 32 bytes, or unreadable: %v", path, err)
	}
	key = make([]byte, 32)
	rand.Read(key)
	err = atomicfile.Write(path, func(f *os.File) error {
		if err := f.Chmod(0o600); err != nil {
			return err
		}
		_, err := f.Write(key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("extensions: sealing key: %w", err)
	}
	return key, nil
}

// NewSealer returns a sealer with a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("extensions: a sealing key is 32 bytes, not %d", len(key))
	}
	enc := sha256.Sum256(append([]byte("enc:"), key...))
	mac := sha256.Sum256(append([]byte("iv:"), key...))
	block, _ := aes.NewCipher(enc[:])
	aead, _ := cipher.NewGCM(block)
	return &Sealer{aead: aead, mac: mac[:]}, nil
}

// Binding names where sealed settings belong.
func Binding(tenant, service, role, extension string) string {
	return strings.Join([]string{tenant, service, role, extension}, "/")
}

// Seal encrypts settings for binding. Nil or empty settings seal to "".
func (s *Sealer) Seal(binding string, settings map[string]any) (string, error) {
	if len(settings) == 0 {
		return "", nil
	}
	plain, err := json.Marshal(settings) // sorted keys: the same settings, the same bytes
	if err != nil {
		return "", fmt.Errorf("extensions: seal: %w", err)
	}
	m := hmac.New(sha256.New, s.mac)
	m.Write([]byte(binding))
	m.Write([]byte{0})
	m.Write(plain)
	nonce := m.Sum(nil)[:s.aead.NonceSize()]
	out := s.aead.Seal(append([]byte(nil), nonce...), nonce, plain, []byte(binding))
	return sealPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// ErrUnseal is returned for sealed text that does not open with this key
// and binding.
var ErrUnseal = errors.New("extensions: protected settings do not open with this server's key (sealed for another place, or by another cluster)")

// Unseal opens what Seal made for binding.
func (s *Sealer) Unseal(binding, sealed string) (map[string]any, error) {
	if sealed == "" {
		return nil, nil
	}
	b64, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, ErrUnseal
	}
	data, err := base64.RawStdEncoding.DecodeString(b64)
	n := s.aead.NonceSize()
	if err != nil || len(data) < n {
		return nil, ErrUnseal
	}
	plain, err := s.aead.Open(nil, data[:n], data[n:], []byte(binding))
	if err != nil {
		return nil, ErrUnseal
	}
	var out map[string]any
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("extensions: unseal: %w", err)
	}
	return out, nil
}
