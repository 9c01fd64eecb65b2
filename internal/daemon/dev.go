package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/internal/agent"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/storage"
)

// devReadyTimeout bounds the wait for weft dev's own nodes to register:
// over loopback it takes well under a second.
const devReadyTimeout = 30 * time.Second

// RunDev runs the whole cloud in one process: a controller with the storage
// service and load balancer, and cfg.Nodes agents (node-1..N in fault domains
// fd1..fdN) that talk to it over loopback like remote agents would. It says
// it is up (its first line on cfg.Stdout, "weft dev: API ...") only once
// every node has registered, so that what is deployed then spreads over
// them. When ctx ends the agents stop their instances, then the controller
// stops.
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
	var sayMu sync.Mutex // the nodes say they stopped from their own goroutines
	say := func(format string, args ...any) {
		if cfg.Stderr != nil {
			sayMu.Lock()
			fmt.Fprintf(cfg.Stderr, "weft dev: "+format+"\n", args...)
			sayMu.Unlock()
		}
	}
	started := time.Now()
	c, err := startController(ctx, ServerConfig{
		Data: filepath.Join(cfg.Data, "server"), Listen: cfg.Listen, Name: "dev",
		DevAccount: true, Logger: log, // the rest: the server's defaults
	})
	if err != nil {
		return err
	}
	closeController := sync.OnceFunc(c.close)
	defer closeController()

	agentCtx, stopAgents := context.WithCancel(context.Background())
	defer stopAgents()
	var agents []*agent.Agent
	var names []string
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Nodes)
	for i := 1; i <= cfg.Nodes; i++ {
		acfg := AgentConfig{
			Server: "http://" + c.addr, Name: fmt.Sprintf("node-%d", i),
			Data: filepath.Join(cfg.Data, "nodes", fmt.Sprintf("node-%d", i)), FaultDomain: fmt.Sprintf("fd%d", i),
			Logger: log,
		}
		if i == 1 && cfg.Stderr != nil { // every node shares the host: tell it once
			acfg.noRuntime = func(runtime string, reason error) {
				say("no %s runtime on this host: %v (roles with runtime: %s cannot run here)", runtime, reason, runtime)
			}
		}
		a, _, err := newAgent(ctx, acfg)
		if err != nil {
			return err
		}
		agents = append(agents, a)
		names = append(names, acfg.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Run(agentCtx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- err
			}
		}()
	}

	waitCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	ready := make(chan error, 1)
	go func() { ready <- waitNodesReady(waitCtx, c.ctl, names, started) }()
	for err == nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case err = <-errs:
			err = fmt.Errorf("dev: agent: %w", err)
		case err = <-c.done:
			err = fmt.Errorf("dev: controller: %w", err)
		case rerr := <-ready:
			ready = nil
			switch {
			case rerr == nil:
				announce(ctx, c, cfg, log)
			case ctx.Err() == nil:
				err = rerr
			}
		}
	}

	log.Info("weft dev stopping: stopping instances")
	stopping := time.Now()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The nodes stop their instances at once, each within its stop grace,
	// rather than one node after another.
	var stopped sync.WaitGroup
	for i, a := range agents {
		ids := a.Instances()
		what := "no instances"
		if len(ids) > 0 {
			what = strings.Join(ids, ", ")
		}
		say("stopping %s: %s", names[i], what)
		stopped.Add(1)
		go func() {
			defer stopped.Done()
			t := time.Now()
			if serr := a.StopAll(stopCtx); serr != nil {
				log.Warn("stop instances", "node", names[i], "err", serr)
				say("%s: not every instance stopped: %v", names[i], serr)
				return
			}
			if len(ids) > 0 {
				say("%s stopped its instances in %s", names[i], time.Since(t).Round(time.Millisecond))
			}
		}()
	}
	stopped.Wait()
	log.Info("weft dev: instances stopped")
	stopAgents()
	wg.Wait()
	say("stopping the controller: API, load balancer, storage")
	closeController()
	say("stopped in %s", time.Since(stopping).Round(time.Millisecond))
	return err
}

// announce says where everything is, once the nodes are ready: the log,
// and the few lines for the person at the terminal.
func announce(ctx context.Context, c *controller, cfg DevConfig, log *slog.Logger) {
	log.Info("weft dev is up", "api", "http://"+c.addr, "nodes", cfg.Nodes, "data", cfg.Data)
	if cfg.Stdout == nil {
		return
	}
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
		return
	}
	fmt.Fprintf(cfg.Stdout, "weft dev: portal %s (a one-time sign-in link; weft signin-link makes another)\n", link.URL)
}

// waitNodesReady waits until each node of names has registered since
// since (a node of an earlier run is in the state already) and is not
// down. It fails after devReadyTimeout naming the nodes still waited for,
// or with ctx's error.
func waitNodesReady(ctx context.Context, ctl *fabric.Controller, names []string, since time.Time) error {
	deadline := time.NewTimer(devReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		waiting := nodesWaiting(ctl.Nodes(ctx), names, since)
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("dev: nodes not ready after %s: %s (see the log)", devReadyTimeout, strings.Join(waiting, ", "))
		case <-tick.C:
		}
	}
}

// nodesWaiting names those of names that have not registered since since,
// or are down, each with why.
func nodesWaiting(nodes []api.Node, names []string, since time.Time) []string {
	byName := map[string]api.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	var waiting []string
	for _, name := range names {
		switch n, ok := byName[name]; {
		case !ok || n.RegisteredAt.Before(since):
			waiting = append(waiting, name+" (not registered)")
		case n.State == api.NodeDown:
			waiting = append(waiting, name+" (down)")
		}
	}
	return waiting
}
