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

// newAgent builds a node agent with every runtime this host offers.
func newAgent(cfg AgentConfig) (*agent.Agent, error) {
	log := defaultLogger(cfg.Logger).With("node", cfg.Name)
	if cfg.Name == "" {
		return nil, errors.New("agent: --name is required")
	}
	if cfg.Data == "" {
		return nil, errors.New("agent: --data is required")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	proc, err := process.New(process.Config{Logger: log.With("driver", "process")})
	if err != nil {
		return nil, fmt.Errorf("agent: process runtime: %w", err)
	}
	drivers := []driver.Driver{proc}
	// The other runtimes are there when the host has what they need.
	if ctr, err := container.New(container.Config{Host: cfg.Host, Logger: log.With("driver", "container")}); err != nil {
		log.Info("no container runtime on this node", "reason", err)
	} else {
		drivers = append(drivers, ctr)
	}
	if vm, err := qemu.New(qemu.Config{Logger: log.With("driver", "vm")}); err != nil {
		log.Info("no vm runtime on this node", "reason", err)
	} else {
		drivers = append(drivers, vm)
	}
	ctl := client.New(cfg.Server)
	acfg := agent.Config{
		Name: cfg.Name, DataDir: cfg.Data, FaultDomain: cfg.FaultDomain,
		Listen: cfg.Listen, Host: cfg.Host, CPU: cfg.CPU, Memory: cfg.Memory,
		HeartbeatInterval: cfg.HeartbeatInterval,
		Drivers:           drivers,
		Logger:            log,
	}
	if cfg.JoinToken != "" {
		if cfg.TLSDir, err = joinCluster(cfg, log); err != nil {
			return nil, err
		}
	}
	if cfg.TLSDir != "" {
		creds, err := pki.LoadAgent(cfg.TLSDir)
		if err != nil {
			return nil, fmt.Errorf("agent: --tls-dir: %w", err)
		}
		acfg.TLS = creds.ServerTLS(true)
		ctl.WithTLS(creds.ClientTLS())
	}
	return agent.New(acfg, ctl)
}

// RunAgent runs a node agent until ctx ends. Its instances keep running
// after it exits, and the next agent on the same --data adopts them.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	a, err := newAgent(cfg)
	if err != nil {
		return err
	}
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// joinCluster gets the agent a certificate of its own, signed by the
// cluster's CA in exchange for the join token, once: it is kept in
// DATA/tls, whose path it returns.
func joinCluster(cfg AgentConfig, log *slog.Logger) (string, error) {
	dir := filepath.Join(cfg.Data, "tls")
	if _, err := os.Stat(filepath.Join(dir, pki.AgentFile)); err == nil {
		return dir, nil
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got api.AgentCertificate
	c := client.New(cfg.Server).WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}).WithToken(cfg.JoinToken)
	if _, err := c.Do(ctx, "POST", "/v1/cluster/certificate", nil, api.AgentCertificateRequest{Name: cfg.Name, CSR: string(csrPEM)}, &got); err != nil {
		return "", fmt.Errorf("agent: join the cluster: %w", err)
	}
	if err := pki.WriteAgent(dir, []byte(got.CA), []byte(got.Certificate), keyPEM); err != nil {
		return "", err
	}
	log.Info("joined the cluster: certificate received", "dir", dir)
	return dir, nil
}
