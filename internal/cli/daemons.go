package cli

import (
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/daemon"
	"github.com/weftcloud/weft/internal/shim"
)

// The daemons: each runs until SIGINT or SIGTERM cancels the command's context.

func (a *app) serverCommand() *cobra.Command {
	var cfg daemon.ServerConfig
	var join string
	cmd := &cobra.Command{
		Use:   "server --data DIR",
		Short: "Run a controller (REST API, fabric, load balancer, storage)",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Data == "" {
				return usagef("server: --data is required")
			}
			for _, j := range strings.Split(join, ",") {
				if j = strings.TrimSpace(j); j != "" {
					cfg.Join = append(cfg.Join, j)
				}
			}
			return daemon.RunServer(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Data, "data", "", "data folder (state, packages)")
	f.StringVar(&cfg.Listen, "listen", daemon.DefaultListen, "REST API address")
	f.StringVar(&cfg.Name, "name", "", "this server's name (default: the host name)")
	f.StringVar(&cfg.LBHost, "host", "127.0.0.1", "host the public endpoints and storage bind on")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", daemon.DefaultHeartbeatInterval, "how often nodes are told to report while the fleet is small (past --heartbeat-rate × this many nodes, the interval grows with the fleet)")
	f.Float64Var(&cfg.HeartbeatRate, "heartbeat-rate", daemon.DefaultHeartbeatRate, "the most heartbeats a second asked of the whole fleet")
	f.DurationVar(&cfg.HeartbeatTTL, "heartbeat-ttl", daemon.DefaultHeartbeatTTL, "a node silent this long is down (at least three of its heartbeat intervals)")
	f.Float64Var(&cfg.DownWaveFraction, "down-wave-fraction", daemon.DefaultDownWaveFraction, "past --down-wave-nodes ready nodes, more than this fraction of them silent at once is taken as the controller's fault: they are declared down at --down-wave-rate (1 turns this off)")
	f.IntVar(&cfg.DownWaveNodes, "down-wave-nodes", daemon.DefaultDownWaveNodes, "fleets of this many ready nodes or fewer declare every silent node down at once")
	f.Float64Var(&cfg.DownWaveRate, "down-wave-rate", daemon.DefaultDownWaveRate, "nodes a second declared down in a wave of silent nodes (--down-wave-fraction)")
	f.Float64Var(&cfg.DownWaveHalt, "down-wave-halt", daemon.DefaultDownWaveHalt, "in a wave, while this fraction of the ready nodes or more is silent, none is declared down")
	f.DurationVar(&cfg.UpgradeTimeout, "upgrade-timeout", daemon.DefaultUpgradeTimeout, "an upgraded domain not healthy this long halts the upgrade")
	f.BoolVar(&cfg.StorageDisabled, "no-storage", false, "do not run the storage service")
	f.BoolVar(&cfg.AllowPrivilegedPorts, "allow-privileged-ports", false, "let services publish endpoints on ports below 1024")
	f.BoolVar(&cfg.DevAccount, "dev-account", false, "also serve the development storage account (devstoreaccount1)")
	f.IntVar(&cfg.BlobPort, "blob-port", daemon.DefaultBlobPort, "storage blob port")
	f.IntVar(&cfg.QueuePort, "queue-port", daemon.DefaultQueuePort, "storage queue port")
	f.IntVar(&cfg.TablePort, "table-port", daemon.DefaultTablePort, "storage table port")
	f.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "servers to wait for before forming a cluster")
	f.StringVar(&join, "join", "", "other servers' --listen addresses, comma-separated")
	f.StringVar(&cfg.TLSDir, "tls-dir", "", "the cluster's credentials (weft tls init): serve TLS, form a cluster with other servers; without it the server is alone, on loopback")
	// For tests: agents' certificates that expire within seconds show
	// renewals without waiting days.
	f.DurationVar(&cfg.AgentCertLifetime, "agent-cert-lifetime", 0, "how long agents' certificates last (default 30 days)")
	_ = f.MarkHidden("agent-cert-lifetime")
	aliases(cmd, map[string]string{"lb-host": "host"})
	return cmd
}

func (a *app) agentCommand() *cobra.Command {
	var cfg daemon.AgentConfig
	var memory, perArchive, perNode string
	cmd := &cobra.Command{
		Use:   "agent --addr URL --name NAME --data DIR",
		Short: "Run a node agent",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case cfg.Name == "":
				return usagef("agent: --name is required")
			case cfg.Data == "":
				return usagef("agent: --data is required")
			}
			if memory != "" {
				b, err := api.ParseBytes(memory)
				if err != nil {
					return usagef("agent: --memory: %v", err)
				}
				cfg.Memory = int64(b)
			}
			for _, l := range []struct {
				flag, val string
				to        *int64
			}{{"unpack-per-archive", perArchive, &cfg.UnpackPerArchive}, {"unpack-per-node", perNode, &cfg.UnpackPerNode}} {
				b, err := api.ParseBytes(l.val)
				if err != nil || b <= 0 {
					return usagef("agent: --%s: want a size such as 4Gi, not %q", l.flag, l.val)
				}
				*l.to = int64(b)
			}
			cfg.CACert = a.caCert // --ca-cert, with --join-token
			cfg.Server = a.addr   // --addr, the controllers this node reports to
			if cfg.Server == "" {
				cfg.Server = client.DefaultAddr
			}
			return daemon.RunAgent(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Name, "name", "", "node name")
	f.StringVar(&cfg.Data, "data", "", "data folder (packages, instances)")
	f.StringVar(&cfg.FaultDomain, "fault-domain", "", "fault domain (default: the node name)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "the agent's own API address (logs)")
	f.StringVar(&cfg.Host, "host", "127.0.0.1", "address where instances' ports are reachable")
	f.StringVar(&cfg.JoinToken, "join-token", os.Getenv("WEFT_JOIN_TOKEN"), "join a TLS cluster: the token from weft tls init (join.token), traded once for the node's own certificate kept in DATA/tls (env WEFT_JOIN_TOKEN)")
	f.Float64Var(&cfg.CPU, "cpu", 0, "CPU cores to offer (0: the machine's)")
	f.StringVar(&memory, "memory", "", "memory to offer, e.g. 4Gi (default: the machine's)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", daemon.DefaultHeartbeatInterval, "how often to report until the controller says (weft server --heartbeat-interval)")
	f.StringVar(&perArchive, "unpack-per-archive", api.Bytes(daemon.DefaultUnpackPerArchive).String(), "most one image or package may unpack to on this node")
	f.StringVar(&perNode, "unpack-per-node", api.Bytes(daemon.DefaultUnpackPerNode).String(), "most all images and packages unpacked on this node may take at once (the image cache and each instance's copy of its package)")
	aliases(cmd, map[string]string{"server": "addr"})
	return cmd
}

// storageCommand is the storage daemon; `weft storage account ...` manages
// the controller's storage accounts and lives under it.
func (a *app) storageCommand() *cobra.Command {
	var cfg daemon.StorageConfig
	cmd := &cobra.Command{
		Use:   "storage --data DIR",
		Short: "Run the storage service alone (blob, queue, table); see also storage account",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Data == "" {
				return usagef("storage: --data is required")
			}
			return daemon.RunStorage(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Data, "data", "", "data folder")
	f.StringVar(&cfg.Host, "host", "127.0.0.1", "host to bind")
	f.IntVar(&cfg.BlobPort, "blob-port", daemon.DefaultBlobPort, "blob port")
	f.IntVar(&cfg.QueuePort, "queue-port", daemon.DefaultQueuePort, "queue port")
	f.IntVar(&cfg.TablePort, "table-port", daemon.DefaultTablePort, "table port")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "loopback address where GET /metrics serves the storage's Prometheus metrics, e.g. 127.0.0.1:9464 (default: not served)")
	f.StringVar(&cfg.Accounts, "accounts", os.Getenv("WEFT_STORAGE_ACCOUNTS"), "accounts and keys to serve instead of the development account, in the form the Azure storage emulator reads from AZURITE_ACCOUNTS: NAME:KEY1[:KEY2];NAME2:KEY1 (names 3-24 lowercase letters and digits, keys base64; env WEFT_STORAGE_ACCOUNTS)")
	cmd.AddCommand(a.storageAccountCommand())
	return cmd
}

func (a *app) devCommand() *cobra.Command {
	var cfg daemon.DevConfig
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a controller, storage and N agents in one process",
		Args:  maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Stdout, cfg.Stderr = a.stdout, a.stderr
			return daemon.RunDev(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Data, "data", ".weft", "data folder")
	f.IntVar(&cfg.Nodes, "nodes", 3, "how many agents (one fault domain each)")
	f.StringVar(&cfg.Listen, "listen", daemon.DefaultListen, "REST API address")
	return cmd
}

// shimCommand documents the shim in the command tree; Main runs it before
// cobra sees the arguments.
func shimCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "shim DIR",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			os.Exit(shim.Main(args))
			return nil
		},
	}
}
