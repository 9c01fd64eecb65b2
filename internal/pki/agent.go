package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftcloud/weft/internal/atomicfile"
)

// pendingKey holds a renewed key until the certificate that goes with it
// is in place (see WriteAgent).
const pendingKey = AgentKeyFile + ".next"

// SignAgent signs the certificate request (PEM) of the agent of node name,
// which the request must name too: a certificate named after the node
// ("weft agent NAME"), good for AgentLifetime. A request that is not PEM,
// not signed by its key or for another name is refused with an error that
// says which.
func (c *Credentials) SignAgent(name string, csrPEM []byte) ([]byte, error) {
	if c.caKey == nil {
		return nil, errors.New("pki: this server cannot sign certificates")
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("pki: not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: certificate request: %w", err)
	}
	if name == "" || csr.Subject.CommonName != name {
		return nil, fmt.Errorf("pki: the certificate request names %q, not node %q", csr.Subject.CommonName, name)
	}
	lifetime := c.AgentLifetime
	if lifetime <= 0 {
		lifetime = DefaultAgentLifetime
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: agentPrefix + name},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(lifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, csr.PublicKey, c.caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: sign: %w", err)
	}
	return pemBlock("CERTIFICATE", der), nil
}

// AgentNode is the node a certificate SignAgent made belongs to; false for
// any other certificate (servers', the agents' shared one from Init).
func AgentNode(cert *x509.Certificate) (string, bool) {
	name, ok := strings.CutPrefix(cert.Subject.CommonName, agentPrefix)
	return name, ok && name != ""
}

// IsServer says whether cert is a server's: the one Init made for the
// servers to share, or one IssueServer made for a server of its own.
func IsServer(cert *x509.Certificate) bool {
	_, ok := ServerName(cert)
	return ok || cert.Subject.CommonName == serverName
}

// ServerName is the server a certificate IssueServer made names; false
// for any other certificate, the servers' shared one included.
func ServerName(cert *x509.Certificate) (string, bool) {
	name, ok := strings.CutPrefix(cert.Subject.CommonName, serverName+" ")
	return name, ok && name != ""
}

// Issued is when the certificate was made: its validity starts a little
// earlier, for servers whose clocks are behind.
func Issued(cert *x509.Certificate) time.Time {
	if t := cert.NotBefore.Add(backdate); t.Before(cert.NotAfter) {
		return t
	}
	return cert.NotAfter
}

// RenewAt is when an agent renews its certificate: once two thirds of its
// lifetime have passed, which leaves a third to retry in.
func RenewAt(cert *x509.Certificate) time.Time {
	issued := Issued(cert)
	return issued.Add(cert.NotAfter.Sub(issued) * 2 / 3)
}

// NewAgentRequest makes a key and a certificate request for agent name:
// PEM of both.
func NewAgentRequest(name string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, err
	}
	return pemKey(key), pemBlock("CERTIFICATE REQUEST", der), nil
}

// WriteAgent stores an agent's credentials in dir, as LoadAgent reads
// them, after checking that the certificate goes with the key. Each file
// is replaced atomically; the key waits beside the certificate it replaces
// until the new certificate is in place, so that a crash in between leaves
// a pair LoadAgent completes or the old pair intact.
func WriteAgent(dir string, caPEM, certPEM, keyPEM []byte) error {
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("pki: the agent's certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{CAFile, caPEM}, {pendingKey, keyPEM}, {AgentFile, certPEM}} {
		if err := writeFile(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	if err := os.Rename(filepath.Join(dir, pendingKey), filepath.Join(dir, AgentKeyFile)); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func writeFile(path string, data []byte) error {
	return atomicfile.Write(path, func(f *os.File) error {
		if err := f.Chmod(0o600); err != nil {
			return err
		}
		_, err := f.Write(data)
		return err
	})
}

// LoadAgent reads a node agent's credentials from dir (ca.pem, agent.pem,
// agent-key.pem), first finishing a WriteAgent a crash interrupted.
func LoadAgent(dir string) (*Credentials, error) {
	pending := filepath.Join(dir, pendingKey)
	if _, err := os.Stat(pending); err == nil {
		if err := finishWrite(dir, pending); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
	}
	return load(dir, AgentFile, AgentKeyFile)
}

// finishWrite puts a pending key in place when the certificate beside it
// is its own, and drops it when the certificate was not replaced yet.
func finishWrite(dir, pending string) error {
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, AgentFile), pending); err != nil {
		return os.Remove(pending)
	}
	return os.Rename(pending, filepath.Join(dir, AgentKeyFile))
}
