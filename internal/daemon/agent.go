package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/agent"
	"github.com/weftcloud/weft/internal/driver"
	"github.com/weftcloud/weft/internal/driver/container"
	"github.com/weftcloud/weft/internal/driver/process"
	"github.com/weftcloud/weft/internal/driver/qemu"
	"github.com/weftcloud/weft/internal/pki"
)

// newAgent builds a node agent with every runtime this host offers and,
// when the agent has a certificate of its own, what renews it.
func newAgent(ctx context.Context, cfg AgentConfig) (*agent.Agent, *pki.Renewer, error) {
	log := defaultLogger(cfg.Logger).With("node", cfg.Name)
	if cfg.Name == "" {
		return nil, nil, errors.New("agent: --name is required")
	}
	if cfg.Data == "" {
		return nil, nil, errors.New("agent: --data is required")
	}
	proc, err := process.New(process.Config{Host: cfg.Host, Logger: log.With("driver", "process")})
	if err != nil {
		return nil, nil, fmt.Errorf("agent: process runtime: %w", err)
	}
	drivers := []driver.Driver{proc}
	// The other runtimes are there when the host has what they need.
	noRuntime := func(runtime string, reason error) {
		log.Info("no "+runtime+" runtime on this node", "reason", reason)
		if cfg.noRuntime != nil {
			cfg.noRuntime(runtime, reason)
		}
	}
	if ctr, err := container.New(container.Config{Host: cfg.Host, Logger: log.With("driver", "container")}); err != nil {
		noRuntime("container", err)
	} else {
		drivers = append(drivers, ctr)
	}
	if vm, err := qemu.New(qemu.Config{Logger: log.With("driver", "vm")}); err != nil {
		noRuntime("vm", err)
	} else {
		drivers = append(drivers, vm)
	}
	ctl := client.New(cfg.Server)
	acfg := agent.Config{
		Name: cfg.Name, DataDir: cfg.Data, FaultDomain: cfg.FaultDomain,
		Listen: cfg.Listen, Host: cfg.Host, CPU: cfg.CPU, Memory: cfg.Memory,
		HeartbeatInterval: cfg.HeartbeatInterval,
		MaxUnpackBytes:    cfg.UnpackPerArchive,
		MaxUnpackedBytes:  cfg.UnpackPerNode,
		Drivers:           drivers,
		Logger:            log,
	}
	if cfg.JoinToken != "" {
		if cfg.TLSDir, err = joinCluster(ctx, cfg, log); err != nil {
			return nil, nil, err
		}
	} else if _, err := os.Stat(filepath.Join(cfg.Data, "tls", pki.AgentFile)); err == nil {
		// Joined before: the certificate is the node's identity.
		cfg.TLSDir = filepath.Join(cfg.Data, "tls")
	}
	var renewer *pki.Renewer
	if cfg.TLSDir != "" {
		creds, err := pki.LoadAgent(cfg.TLSDir)
		if err != nil {
			return nil, nil, fmt.Errorf("agent: --tls-dir: %w", err)
		}
		acfg.TLS = creds.AgentServeTLS()
		ctl.WithTLS(creds.ClientTLS())
		if renewer, err = agentRenewer(cfg, creds, ctl, log); err != nil {
			return nil, nil, err
		}
	}
	a, err := agent.New(acfg, ctl)
	return a, renewer, err
}

// agentRenewer checks the agent's certificate and returns what renews it.
func agentRenewer(cfg AgentConfig, creds *pki.Credentials, ctl *client.Client, log *slog.Logger) (*pki.Renewer, error) {
	leaf := creds.Certificate().Leaf
	if time.Now().After(leaf.NotAfter) {
		return nil, fmt.Errorf("agent: the certificate in %s expired at %s: join again with --join-token", cfg.TLSDir, leaf.NotAfter.Format(time.RFC3339))
	}
	node, ok := pki.AgentNode(leaf)
	if !ok {
		return nil, fmt.Errorf("agent: the certificate in %s names no node: remove the folder and join with --join-token", cfg.TLSDir)
	}
	if node != cfg.Name {
		return nil, fmt.Errorf("agent: the certificate in %s is node %s's, not %s's", cfg.TLSDir, node, cfg.Name)
	}
	return &pki.Renewer{
		Node: node, Dir: cfg.TLSDir, Creds: creds, Logger: log.With("part", "pki"),
		Sign: func(ctx context.Context, csrPEM []byte) ([]byte, []byte, error) {
			got, err := ctl.RenewCertificate(ctx, api.AgentCertificateRequest{Name: node, CSR: string(csrPEM)})
			return []byte(got.Certificate), []byte(got.CA), err
		},
		Renewed: ctl.CloseIdleConnections,
	}, nil
}

// RunAgent runs a node agent until ctx ends. Its instances keep running
// after it exits, and the next agent on the same --data adopts them.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	a, renewer, err := newAgent(ctx, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if renewer != nil {
		go renewer.Run(ctx)
	}
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// joinCluster gets the agent a certificate of its own, signed by the
// cluster's CA in exchange for the join token: it is kept in DATA/tls,
// whose path it returns, and renewed there. The agent joins again when
// the certificate there has expired (it was stopped too long to renew
// it); an operator makes a revoked node join again by removing DATA/tls.
func joinCluster(ctx context.Context, cfg AgentConfig, log *slog.Logger) (string, error) {
	dir := filepath.Join(cfg.Data, "tls")
	if _, err := os.Stat(filepath.Join(dir, pki.AgentFile)); err == nil {
		creds, err := pki.LoadAgent(dir)
		if err == nil {
			expires := creds.Certificate().Leaf.NotAfter
			if time.Now().Before(expires) {
				return dir, nil
			}
			err = fmt.Errorf("it expired at %s", expires.Format(time.RFC3339))
		}
		log.Warn("the agent's certificate cannot be used; joining the cluster again", "dir", dir, "err", err)
	}
	if cfg.CACert == "" {
		return "", errors.New("agent: --join-token needs --ca-cert, the cluster's CA certificate")
	}
	pool, err := pki.LoadCA(cfg.CACert)
	if err != nil {
		return "", fmt.Errorf("agent: --ca-cert: %w", err)
	}
	keyPEM, csrPEM, err := pki.NewAgentRequest(cfg.Name)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := client.New(cfg.Server).WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}).WithToken(cfg.JoinToken)
	got, err := c.JoinCluster(ctx, api.AgentCertificateRequest{Name: cfg.Name, CSR: string(csrPEM)})
	if err != nil {
		return "", fmt.Errorf("agent: join the cluster: %w", err)
	}
	if err := pki.WriteAgent(dir, []byte(got.CA), []byte(got.Certificate), keyPEM); err != nil {
		return "", err
	}
	log.Info("joined the cluster: certificate received", "dir", dir)
	return dir, nil
}
