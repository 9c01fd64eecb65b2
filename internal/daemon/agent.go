package daemon

import (
	"context"
	"errors"
	"fmt"

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
