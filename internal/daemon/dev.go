package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/agent"
	"github.com/weftcloud/weft/internal/storage"
)

// RunDev runs the whole cloud in one process: a controller with the storage
// service and load balancer, and cfg.Nodes agents (node-1..N in fault domains
// fd1..fdN) that talk to it over loopback like remote agents would. When ctx
// ends the agents stop their instances, then the controller stops.
func RunDev(ctx context.Context, cfg DevConfig) error {
	log := defaultLogger(cfg.Logger)
	if cfg.Data == "" {
		cfg.Data = ".weft"
	}
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	c, err := startController(ctx, ServerConfig{
		Data: filepath.Join(cfg.Data, "server"), Listen: cfg.Listen, Name: "dev",
		HeartbeatInterval: DefaultHeartbeatInterval, HeartbeatTTL: DefaultHeartbeatTTL,
		BlobPort: DefaultBlobPort, QueuePort: DefaultQueuePort, TablePort: DefaultTablePort,
		DevAccount: true, Logger: log,
	})
	if err != nil {
		return err
	}
	defer c.close()

	agentCtx, stopAgents := context.WithCancel(context.Background())
	defer stopAgents()
	var agents []*agent.Agent
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Nodes)
	for i := 1; i <= cfg.Nodes; i++ {
		acfg := AgentConfig{
			Server: "http://" + c.addr, Name: fmt.Sprintf("node-%d", i),
			Data: filepath.Join(cfg.Data, "nodes", fmt.Sprintf("node-%d", i)), FaultDomain: fmt.Sprintf("fd%d", i),
			HeartbeatInterval: DefaultHeartbeatInterval, Logger: log,
		}
		if i == 1 && cfg.Stderr != nil { // every node shares the host: tell it once
			acfg.noRuntime = func(runtime string, reason error) {
				fmt.Fprintf(cfg.Stderr, "weft dev: no %s runtime on this host: %v (roles with runtime: %s cannot run here)\n", runtime, reason, runtime)
			}
		}
		a, _, err := newAgent(ctx, acfg)
		if err != nil {
			return err
		}
		agents = append(agents, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(agentCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
	}
	log.Info("weft dev is up", "api", "http://"+c.addr, "nodes", cfg.Nodes, "data", cfg.Data)
	if cfg.Stdout != nil {
		// The Go SDK does not understand UseDevelopmentStorage=true: it
		// needs the full string.
		fmt.Fprintf(cfg.Stdout, "weft dev: API http://%s, %d nodes, data in %s\n"+
			"weft dev: storage account %s (UseDevelopmentStorage=true); its full connection string:\n%s\n",
			c.addr, cfg.Nodes, cfg.Data, storage.DevAccount, c.accts.DevAccountKeys().ConnectionString)
		// The newcomer signs in to the portal with one click: a one-time
		// link for the operator of this cloud (its user).
		link, err := c.tenants.CreateSignInLink(ctx, api.CreateSignInLink{Role: api.AccessOperator}, "http://"+c.addr, "weft dev")
		if err != nil {
			log.Warn("no portal sign-in link", "err", err)
		} else {
			fmt.Fprintf(cfg.Stdout, "weft dev: portal %s (a one-time sign-in link; weft signin-link makes another)\n", link.URL)
		}
	}

	select {
	case <-ctx.Done():
	case err = <-errs:
		err = fmt.Errorf("dev: agent: %w", err)
	case err = <-c.done:
		err = fmt.Errorf("dev: controller: %w", err)
	}
	log.Info("weft dev stopping: stopping instances")
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cfg.Stderr != nil {
		fmt.Fprintf(cfg.Stderr, "weft dev: stopping the instances of %d nodes, then the controller\n", len(agents))
	}
	// The nodes stop their instances at once, each within its stop grace,
	// rather than one node after another.
	var stopping sync.WaitGroup
	for i, a := range agents {
		stopping.Add(1)
		go func() {
			defer stopping.Done()
			if serr := a.StopAll(stopCtx); serr != nil {
				log.Warn("stop instances", "node", i+1, "err", serr)
			}
		}()
	}
	stopping.Wait()
	log.Info("weft dev: instances stopped")
	stopAgents()
	wg.Wait()
	return err
}
