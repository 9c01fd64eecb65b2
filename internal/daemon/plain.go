package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/atomicfile"
	"github.com/weftcloud/weft/internal/pki"
)

// A server without TLS (--tls-dir) is for one machine: it listens on
// loopback only, stays alone (no Raft peers: nothing would tell them from
// anyone else on the machine), and answers only the user who started it,
// who holds its admin token.

// AdminTokenFile holds, in a server's data folder, the admin token of a
// server without TLS.
const AdminTokenFile = "admin.token"

// checkPlain refuses what a server without TLS must not do.
func checkPlain(cfg ServerConfig) error {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: --listen %q: %w", cfg.Listen, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("server: --listen %s is not a loopback address: without TLS the API is for this machine only; make the cluster's credentials with `weft tls init` and give them with --tls-dir", cfg.Listen)
	}
	if len(cfg.Join) > 0 || cfg.BootstrapExpect > 1 {
		return errors.New("server: several servers form a cluster only over TLS: make the cluster's credentials with `weft tls init` and give every server --tls-dir")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainAdminToken returns the admin token of the server whose data folder
// is data, made on its first start (0600), and keeps it for the user who
// started the server under the API's address api, where the CLI and the
// Go client find it (client.TokensFile).
func plainAdminToken(data, api string) (string, error) {
	path := filepath.Join(data, AdminTokenFile)
	raw, err := os.ReadFile(path)
	tok := strings.TrimSpace(string(raw))
	switch {
	case errors.Is(err, fs.ErrNotExist) || (err == nil && tok == ""):
		tok = pki.NewToken()
		err = atomicfile.Write(path, func(f *os.File) error {
			if err := f.Chmod(0o600); err != nil {
				return err
			}
			_, err := f.WriteString(tok + "\n")
			return err
		})
		if err != nil {
			return "", fmt.Errorf("server: admin token: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("server: admin token: %w", err)
	}
	if err := client.SaveToken(api, tok); err != nil {
		return "", fmt.Errorf("server: keep the admin token for the CLI: %w", err)
	}
	return tok, nil
}
