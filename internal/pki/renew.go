package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"
)

// Renewer keeps an agent's own certificate fresh: at RenewAt it makes a
// new key, has a server sign a request for it, writes the pair to Dir and
// hands it to Creds, whose TLS configurations present it on the
// connections made from then on. No restart is needed.
type Renewer struct {
	Node  string // the agent's node, named by its certificate
	Dir   string // where LoadAgent reads the credentials
	Creds *Credentials
	// Sign sends a certificate request (PEM) to the servers over the
	// agent's mutual-TLS connection, which the current certificate
	// authorizes, and returns the new certificate and the CA's (PEM).
	Sign func(ctx context.Context, csrPEM []byte) (certPEM, caPEM []byte, err error)
	// Renewed, when set, runs after each renewal: the agent drops the idle
	// connections that still present the old certificate.
	Renewed func()
	Logger  *slog.Logger
}

// Run renews the certificate whenever it is due, at once if it already is
// (an agent that was stopped for a while), until ctx ends; it returns
// ctx's error. A failed renewal is logged and retried while the old
// certificate lasts, and after: only the servers can tell when it is no
// use any more (expired, or its node revoked).
func (r *Renewer) Run(ctx context.Context) error {
	var retry time.Duration // after a failure: how long to wait
	for {
		leaf := r.Creds.Certificate().Leaf
		wait := time.Until(RenewAt(leaf))
		if retry > 0 {
			wait = retry
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if err := r.renew(ctx); err != nil {
			retry = retryInterval(leaf)
			r.Logger.Warn("certificate renewal failed; retrying", "err", err, "expires", leaf.NotAfter, "retry_in", retry)
			continue
		}
		retry = 0
	}
}

// retryInterval is a twentieth of the certificate's lifetime, between a
// second and five minutes: a 30-day certificate has its last ten days to
// retry in, every five minutes.
func retryInterval(cert *x509.Certificate) time.Duration {
	return min(max(cert.NotAfter.Sub(Issued(cert))/20, time.Second), 5*time.Minute)
}

func (r *Renewer) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	keyPEM, csrPEM, err := NewAgentRequest(r.Node)
	if err != nil {
		return err
	}
	certPEM, caPEM, err := r.Sign(ctx, csrPEM)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("pki: the renewed certificate: %w", err)
	}
	if name, ok := AgentNode(cert.Leaf); !ok || name != r.Node {
		return fmt.Errorf("pki: the renewed certificate is not node %s's (%q)", r.Node, cert.Leaf.Subject.CommonName)
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: r.Creds.CA, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("pki: the renewed certificate: %w", err)
	}
	if err := WriteAgent(r.Dir, caPEM, certPEM, keyPEM); err != nil {
		return err
	}
	if err := r.Creds.SetCertificate(cert); err != nil {
		return err
	}
	r.Logger.Info("certificate renewed", "serial", cert.Leaf.SerialNumber.Text(16), "expires", cert.Leaf.NotAfter)
	if r.Renewed != nil {
		r.Renewed()
	}
	return nil
}
