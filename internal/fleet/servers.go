package fleet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // the server process's profiles, on Config.Pprof
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/daemon"
	"github.com/weftcloud/weft/internal/pki"
)

// The servers run in processes of their own, started from this program's
// binary: their memory and CPU are then theirs alone to measure, and the
// leader kill is a real kill. serverEnv carries a child's configuration.
const serverEnv = "WEFT_FLEET_SERVER"

// childConfig is what a server process runs.
type childConfig struct {
	Server daemon.ServerConfig
	Pprof  string // address for net/http/pprof; empty: none
}

// ServeIfChild runs a server and exits when this process was started as
// one of the harness's servers; otherwise it returns at once. main and
// TestMain call it first.
func ServeIfChild() {
	raw := os.Getenv(serverEnv)
	if raw == "" {
		return
	}
	var cc childConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		fmt.Fprintf(os.Stderr, "fleet: server configuration: %v\n", err)
		os.Exit(2)
	}
	cc.Server.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if cc.Pprof != "" {
		go http.ListenAndServe(cc.Pprof, nil)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := daemon.RunServer(ctx, cc.Server); err != nil {
		fmt.Fprintf(os.Stderr, "fleet: server: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// server is one server process.
type server struct {
	name string
	api  string // https://host:port or http://
	cmd  *exec.Cmd
	done chan struct{} // closed once the process exited
}

// cluster is the servers and a client of the operator's.
type cluster struct {
	servers []*server
	client  *client.Client
	tls     *tls.Config // nil: plain HTTP (one server)
	token   string
}

// freePair returns a loopback port p whose p+1 is free too: a server's
// API and Raft addresses (cluster.RaftAddress).
func freePair() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		ln.Close()
		if err == nil {
			next.Close()
			return p, nil
		}
	}
	return 0, errors.New("fleet: no two free ports in a row")
}

// startServers starts cfg.Servers servers under dir and waits until the
// API answers through the returned client. Several servers form a Raft
// cluster over TLS (they must), with credentials made as weft tls init
// makes them.
func startServers(ctx context.Context, cfg Config, dir string) (*cluster, error) {
	cl := &cluster{}
	var tlsDir string
	if cfg.Servers > 1 {
		tlsDir = filepath.Join(dir, "tls")
		if err := pki.Init(tlsDir, nil); err != nil {
			return nil, fmt.Errorf("fleet: credentials: %w", err)
		}
		pool, err := pki.LoadCA(filepath.Join(tlsDir, pki.CAFile))
		if err != nil {
			return nil, fmt.Errorf("fleet: credentials: %w", err)
		}
		cl.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		tok, err := os.ReadFile(filepath.Join(tlsDir, pki.AdminTokenFile))
		if err != nil {
			return nil, fmt.Errorf("fleet: credentials: %w", err)
		}
		cl.token = strings.TrimSpace(string(tok))
	}
	var listens []string
	for range cfg.Servers {
		p, err := freePair()
		if err != nil {
			return nil, err
		}
		listens = append(listens, "127.0.0.1:"+strconv.Itoa(p))
	}
	scheme := "http://"
	if cl.tls != nil {
		scheme = "https://"
	}
	var apis []string
	for i, listen := range listens {
		name := fmt.Sprintf("s%d", i+1)
		sc := daemon.ServerConfig{
			Data: filepath.Join(dir, name), Listen: listen, Name: name,
			HeartbeatInterval: cfg.HeartbeatInterval, HeartbeatRate: cfg.HeartbeatRate, HeartbeatTTL: cfg.HeartbeatTTL,
			DownWaveFraction: cfg.DownWaveFraction,
			// The storage service is not what this measures.
			StorageDisabled: true, TLSDir: tlsDir,
		}
		if cfg.Servers > 1 {
			sc.BootstrapExpect, sc.Join = cfg.Servers, listens
		}
		cc := childConfig{Server: sc}
		if i == 0 {
			cc.Pprof = cfg.Pprof
		}
		s, err := startServer(cc, dir)
		if err != nil {
			cl.close()
			return nil, err
		}
		s.api = scheme + listen
		apis = append(apis, s.api)
		cl.servers = append(cl.servers, s)
	}
	if cl.tls == nil {
		// A server without TLS makes its admin token on its first start.
		path := filepath.Join(dir, "s1", daemon.AdminTokenFile)
		if err := waitFor(ctx, time.Minute, func() bool {
			tok, err := os.ReadFile(path)
			cl.token = strings.TrimSpace(string(tok))
			return err == nil && cl.token != ""
		}); err != nil {
			cl.close()
			return nil, fmt.Errorf("fleet: the server made no admin token: %w", err)
		}
	}
	cl.client = cl.newClient(strings.Join(apis, ","))
	if err := waitFor(ctx, 2*time.Minute, func() bool {
		_, err := cl.client.Nodes(ctx)
		return err == nil
	}); err != nil {
		cl.close()
		return nil, fmt.Errorf("fleet: the servers did not answer: %w (their log: %s)", err, filepath.Join(dir, "s1.log"))
	}
	return cl, nil
}

// newClient is a client of the servers at addrs with the operator's
// token: the simulated agents use it too (an agent's own routes admit the
// operator), which spares a certificate per node.
func (cl *cluster) newClient(addrs string) *client.Client {
	c := client.New(addrs)
	if cl.tls != nil {
		c = c.WithTLS(cl.tls)
	}
	return c.WithToken(cl.token)
}

// newNodeClient is newClient with connections of its own, as a node on
// its own host has: without TLS a client shares http.DefaultTransport,
// which keeps two idle connections per server for the whole process, so
// 1,000 agents' heartbeats and blocking queries queued to dial new ones
// (the harness, not the controller, then held the heartbeats back).
func (cl *cluster) newNodeClient(addrs string) *client.Client {
	if cl.tls != nil {
		return cl.newClient(addrs) // WithTLS makes a transport per client
	}
	return client.New(addrs).WithTransport(http.DefaultTransport.(*http.Transport).Clone()).WithToken(cl.token)
}

func (cl *cluster) addrs() string {
	var apis []string
	for _, s := range cl.servers {
		apis = append(apis, s.api)
	}
	return strings.Join(apis, ",")
}

// startServer starts one server process; its output goes to NAME.log in dir.
func startServer(cc childConfig, dir string) (*server, error) {
	raw, err := json.Marshal(cc)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, cc.Server.Name+".log"))
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), serverEnv+"="+string(raw),
		// The plain server keeps its token for the CLI there: not in the
		// user's own configuration.
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// A harness killed outright takes its servers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fleet: start server %s: %w", cc.Server.Name, err)
	}
	s := &server{name: cc.Server.Name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(s.done) }()
	return s, nil
}

// kill ends a server at once (SIGKILL).
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// close stops every server that still runs: SIGTERM, then SIGKILL after 10s.
func (cl *cluster) close() {
	for _, s := range cl.servers {
		s.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, s := range cl.servers {
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.kill()
		}
	}
}

// leader is the server that leads, or nil when none is known.
func (cl *cluster) leader(ctx context.Context) *server {
	members, err := cl.client.Members(ctx)
	if err != nil {
		return nil
	}
	for _, m := range members {
		if !m.Leader {
			continue
		}
		for _, s := range cl.servers {
			if s.name == m.Name {
				return s
			}
		}
	}
	return nil
}

// waitFor polls ok every 100ms until it holds, within limit.
func waitFor(ctx context.Context, limit time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
