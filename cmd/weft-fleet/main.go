// Command weft-fleet measures a Weft controller at scale: real servers and
// N simulated nodes (real agents with a fake runtime), M instances
// deployed, one node in ten killed. BENCHMARKS.md says how to read it.
//
//	go run ./cmd/weft-fleet -nodes 1000 -instances 20000 [-servers 3] [-json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/weftcloud/weft/internal/fleet"
)

func main() {
	fleet.ServeIfChild()
	var cfg fleet.Config
	flag.IntVar(&cfg.Nodes, "nodes", 50, "simulated nodes")
	flag.IntVar(&cfg.Instances, "instances", 1000, "instances to deploy")
	flag.IntVar(&cfg.Servers, "servers", 1, "servers: 1, or 3 (a Raft cluster over TLS)")
	flag.IntVar(&cfg.PerService, "per-service", 100, "instances per service")
	flag.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "the servers' --heartbeat-interval, told to the agents (default the daemon's)")
	flag.Float64Var(&cfg.HeartbeatRate, "heartbeat-rate", 0, "the servers' --heartbeat-rate (default the daemon's)")
	flag.DurationVar(&cfg.HeartbeatTTL, "heartbeat-ttl", 0, "a node silent this long is down (default the daemon's)")
	flag.Float64Var(&cfg.DownWaveFraction, "down-wave-fraction", 0, "the servers' --down-wave-fraction (1 turns the node-down wave guard off; default the daemon's)")
	flag.DurationVar(&cfg.Cut, "cut", 0, "once every instance runs, lose the heartbeats of -cut-nodes nodes this long, as when the controller's network is cut, and count the nodes declared down and the instances placed until the fleet settles")
	flag.IntVar(&cfg.CutNodes, "cut-nodes", 0, "how many nodes -cut cuts off (default all)")
	flag.BoolVar(&cfg.KillLeader, "kill-leader", false, "kill the leading server when half the services are deployed (with -servers 3)")
	flag.StringVar(&cfg.Pprof, "pprof", "", "serve the first server's net/http/pprof on this address")
	flag.StringVar(&cfg.Dir, "dir", "", "work folder (default: a new one in /dev/shm, removed at the end)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work folder")
	flag.DurationVar(&cfg.CPUWindow, "cpu-window", 0, "how long the heartbeats' CPU is measured (default 5s; longer to profile them)")
	flag.DurationVar(&cfg.Timeout, "timeout", 5*time.Minute, "the longest wait for nodes, instances and the heal")
	asJSON := flag.Bool("json", false, "print one JSON object")
	cpuProfile := flag.String("cpuprofile", "", "write this process's CPU profile (the agents' side) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weft-fleet:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cfg.Progress = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s weft-fleet: "+format+"\n", append([]any{time.Now().Format("15:04:05.0")}, args...)...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := fleet.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-fleet:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
	if *asJSON {
		out, _ := json.MarshalIndent(res, "", "  ")
		fmt.Println(string(out))
		return
	}
	fmt.Print(fleet.Summary(res))
}
