// Package pki makes and loads a cluster's credentials: a certificate
// authority, the servers' certificate (good for serving and for dialling
// other servers), and the tokens API clients and joining agents present.
// `weft tls init` writes them to a folder that every server is given.
//
// Agents that join with the join token get a certificate of their own,
// named after their node ("weft agent NAME") and good for
// DefaultAgentLifetime; a Renewer replaces it before it expires, and a
// certificate's issue time (Issued) is what node revocation compares.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Files of a credentials folder.
const (
	CAFile         = "ca.pem"
	CAKeyFile      = "ca-key.pem"
	ServerFile     = "server.pem"
	ServerKeyFile  = "server-key.pem"
	AgentFile      = "agent.pem" // a node agent's own, in its DATA/tls (WriteAgent)
	AgentKeyFile   = "agent-key.pem"
	AdminTokenFile = "admin.token" // API clients: Authorization: Bearer
	JoinTokenFile  = "join.token"  // agents trade it for a certificate of their own
)

// DefaultAgentLifetime is how long a certificate SignAgent makes is good
// for; its agent renews it once two thirds of that have passed (RenewAt).
const DefaultAgentLifetime = 30 * 24 * time.Hour

// backdate starts a certificate's validity this long before it is issued,
// so that a server whose clock is a little behind the signer's accepts it.
const backdate = time.Hour

// agentPrefix starts the common name of a node's own certificate.
const agentPrefix = "weft agent "

// Init makes a new CA, a server certificate for hosts (names or
// addresses; localhost and 127.0.0.1 are always added) and two tokens in
// dir. Agents get certificates of their own for the join token. It refuses to overwrite existing credentials.
func Init(dir string, hosts []string) error {
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return fmt.Errorf("pki: %s already holds a CA: remove it to start over", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "weft cluster CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("pki: CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	names := append([]string{"localhost", "127.0.0.1"}, hosts...)
	srvDER, srvKey, err := issue(ca, caKey, serverName, names)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		CAFile:         pemBlock("CERTIFICATE", caDER),
		CAKeyFile:      pemKey(caKey),
		ServerFile:     pemBlock("CERTIFICATE", srvDER),
		ServerKeyFile:  pemKey(srvKey),
		AdminTokenFile: []byte(token() + "\n"),
		JoinTokenFile:  []byte(token() + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return nil
}

// issue makes a certificate the CA signs, good for serving (for names)
// and for dialling with.
// serverName is the common name of the servers' certificate.
const serverName = "weft server"

func issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, names []string) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-backdate), NotAfter: now.AddDate(5, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range names {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s certificate: %w", cn, err)
	}
	return der, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func token() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pemKey(k *ecdsa.PrivateKey) []byte {
	der, _ := x509.MarshalECPrivateKey(k)
	return pemBlock("EC PRIVATE KEY", der)
}

// Credentials are one party's: the CA to check others against, its own
// certificate, and (servers only) the admin token.
type Credentials struct {
	CA         *x509.CertPool
	AdminToken string
	JoinToken  string
	// AgentLifetime is how long the certificates SignAgent makes are good
	// for; zero means DefaultAgentLifetime.
	AgentLifetime time.Duration

	// cert is swapped when an agent renews it; the TLS configurations
	// below read it at every handshake.
	cert atomic.Pointer[tls.Certificate]

	// Servers sign joining agents' certificates.
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

// Certificate is the party's own certificate, with its Leaf parsed.
func (c *Credentials) Certificate() *tls.Certificate { return c.cert.Load() }

// SetCertificate replaces the party's certificate for the connections made
// or accepted from now on.
func (c *Credentials) SetCertificate(cert tls.Certificate) error {
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("pki: %w", err)
		}
		cert.Leaf = leaf
	}
	c.cert.Store(&cert)
	return nil
}

// LoadServer reads the credentials of server name from dir: its own
// certificate (IssueServer) when dir holds one, else the one tls init made
// for the servers to share.
func LoadServer(dir, name string) (*Credentials, error) {
	certFile, keyFile := ServerFile, ServerKeyFile
	if own, ownKey := serverFiles(name); name != "" {
		if _, err := os.Stat(filepath.Join(dir, own)); err == nil {
			certFile, keyFile = own, ownKey
		}
	}
	c, err := load(dir, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	for name, dst := range map[string]*string{AdminTokenFile: &c.AdminToken, JoinTokenFile: &c.JoinToken} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		if *dst = strings.TrimSpace(string(data)); *dst == "" {
			return nil, fmt.Errorf("pki: %s is empty", name)
		}
	}
	// The CA's key lets servers sign the certificates of agents that join
	// with the join token.
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: the CA's key: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("pki: the CA's key is not ECDSA")
	}
	if c.caCert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
		return nil, err
	}
	c.caKey = key
	return c, nil
}

// serverFiles are the files of server name's own certificate and key.
func serverFiles(name string) (cert, key string) {
	return "server-" + name + ".pem", "server-" + name + "-key.pem"
}

// IssueServer makes server name its own certificate in dir, which holds
// the CA (tls init), good for hosts as well as localhost and 127.0.0.1: a
// server that joins a running cluster (--join without --bootstrap-expect)
// needs one, since the cluster admits a joining server under the name its
// certificate gives. LoadServer then prefers it to the shared one.
func IssueServer(dir, name string, hosts []string) error {
	if name == "" || strings.ContainsAny(name, " \n/") {
		return fmt.Errorf("pki: %q is not a server name", name)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return fmt.Errorf("pki: the CA's key: %w", err)
	}
	caKey, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("pki: the CA's key is not ECDSA")
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	der, key, err := issue(ca, caKey, serverName+" "+name, append([]string{"localhost", "127.0.0.1"}, hosts...))
	if err != nil {
		return err
	}
	certFile, keyFile := serverFiles(name)
	for file, data := range map[string][]byte{certFile: pemBlock("CERTIFICATE", der), keyFile: pemKey(key)} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return nil
}

// CAPEM is the CA's certificate in PEM, for agents that join.
func (c *Credentials) CAPEM() []byte {
	if c.caCert == nil {
		return nil
	}
	return pemBlock("CERTIFICATE", c.caCert.Raw)
}

// IsJoinToken reports whether authorization carries the join token of the
// TLS folder.
func (c *Credentials) IsJoinToken(authorization string) bool {
	return c.JoinToken != "" && BearerMatches(authorization, TokenHash(c.JoinToken))
}

// NewToken makes a random token.
func NewToken() string { return token() }

// TokenHash is what is kept of a token where its bearer must not be able
// to read it back: its SHA-256, in hex.
func TokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// BearerMatches reports whether authorization carries a bearer token whose
// hash is hash, in constant time.
func BearerMatches(authorization, hash string) bool {
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	got := TokenHash(tok)
	return ok && tok != "" && subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1
}

func load(dir, certFile, keyFile string) (*Credentials, error) {
	ca, err := LoadCA(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certFile, err)
	}
	c := &Credentials{CA: ca}
	if err := c.SetCertificate(cert); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadCA reads a CA certificate file into a pool.
func LoadCA(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("pki: %s holds no certificate", path)
	}
	return pool, nil
}

// ServerTLS serves with the certificate; client certificates are checked
// against the CA, required when require is set and otherwise checked when
// given (API clients may use a token instead).
func (c *Credentials) ServerTLS(require bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if require {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{GetCertificate: c.serving, ClientCAs: c.CA, ClientAuth: auth, MinVersion: tls.VersionTLS12}
}

// AgentServeTLS is how a node's agent serves its API: to the servers'
// certificate only (another node's certificate is of the same CA).
func (c *Credentials) AgentServeTLS() *tls.Config {
	config := c.ServerTLS(true)
	config.VerifyConnection = serversOnly
	return config
}

func serversOnly(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || !IsServer(cs.VerifiedChains[0][0]) {
		return errors.New("pki: only the cluster's servers may connect: the peer has no server certificate")
	}
	return nil
}

// RaftTLS is ClientTLS for Raft, both ways: the peer must present the
// servers' certificate, not merely one of the CA (a node's).
func (c *Credentials) RaftTLS() *tls.Config {
	config := c.ClientTLS()
	config.VerifyConnection = serversOnly
	return config
}

// ClientTLS dials with the certificate and checks servers against the CA.
// Raft also serves with it, so it carries the certificate both ways.
func (c *Credentials) ClientTLS() *tls.Config {
	return &tls.Config{GetCertificate: c.serving, GetClientCertificate: c.dialling, RootCAs: c.CA, ClientCAs: c.CA, MinVersion: tls.VersionTLS12}
}

func (c *Credentials) serving(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

func (c *Credentials) dialling(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// IsAdminToken reports whether authorization carries the admin token as
// a bearer token, in constant time.
func (c *Credentials) IsAdminToken(authorization string) bool {
	return c.AdminToken != "" && BearerMatches(authorization, TokenHash(c.AdminToken))
}

// AgentDialTLS is how servers dial node agents: agents live at addresses
// no certificate can name in advance, so an agent is known by a certificate
// the cluster's CA signed rather than by its address.
func (c *Credentials) AgentDialTLS() *tls.Config {
	return &tls.Config{
		GetClientCertificate: c.dialling, MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: true, // the chain is checked below, without the host name
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: the agent presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: c.CA, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		},
	}
}
