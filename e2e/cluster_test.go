package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/google/go-cmp/cmp"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/loadgen"
	"github.com/weftcloud/weft/internal/pkgarchive"
	"github.com/weftcloud/weft/internal/storage/placement"
)

// freePortPair returns a free port whose next port is free too: a
// server's API port and its Raft port.
func freePortPair(t testing.TB) int {
	t.Helper()
	for tries := 0; tries < 100; tries++ {
		p := freePort(t)
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil {
			ln.Close()
			portsMu.Lock()
			taken := portsGiven[p+1]
			portsGiven[p+1] = true
			portsMu.Unlock()
			if !taken {
				return p
			}
		}
	}
	t.Fatal("no pair of free ports")
	return 0
}

// newServers starts n controller servers (s1..sn) that form one Raft
// cluster over TLS, and no agents. The cluster's client knows every server.
func newServers(t testing.TB, n int) *cluster {
	return newServersWith(t, n, nil)
}

// newServersWith starts servers with extra flags, on new credentials of
// weft tls init: the cluster's client and CLI use the CA and the API
// token, and its agents join with the join token.
func newServersWith(t testing.TB, n int, serverFlags []string) *cluster {
	requireE2E(t)
	sec := tlsInit(t)
	c := &cluster{t: t, dir: t.TempDir(), servers: map[string]*proc{}, agents: map[string]*proc{},
		extra: append(sec.serverFlags(), serverFlags...), sec: sec, env: sec.env()}
	t.Cleanup(c.cleanup)
	var addrs []string
	for i := 0; i < n; i++ {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", freePortPair(t)))
	}
	for i, addr := range addrs {
		c.startReplica(fmt.Sprintf("s%d", i+1), addr, addrs)
	}
	c.agentFlags = append(sec.agentFlags(), fastAgent...)
	c.apiArg = strings.Join(addrs, ",")
	c.client = c.clientFor(c.apiArg)
	c.api = strings.Join(c.client.Addrs(), ",")
	c.waitFor("a leader among the servers", 30*time.Second, func() bool { return c.leader() != "" })
	for _, a := range addrs {
		c.waitFor("server "+a+" in the cluster", 30*time.Second, func() bool {
			_, err := c.clientFor(a).Status(context.Background())
			return err == nil
		})
	}
	return c
}

// startReplica starts (or restarts) server name at addr with its data. Its
// load balancer binds on its own loopback address (s2: 127.0.0.2), as
// servers on separate hosts would.
func (c *cluster) startReplica(name, addr string, all []string) {
	c.servers[name] = c.start(name, append([]string{"server", "--name", name, "--data", filepath.Join(c.dir, name),
		"--listen", addr, "--bootstrap-expect", fmt.Sprint(len(all)), "--join", strings.Join(all, ","),
		"--no-storage", "--lb-host", lbHost(name)}, append(slices.Clone(fastServer), c.extra...)...)...)
	c.servers[name].addr = addr
}

func lbHost(server string) string { return "127.0.0." + strings.TrimPrefix(server, "s") }

// leader is the leading server's name as the servers report it ("" when none).
func (c *cluster) leader() string { return leaderSeenBy(c.client) }

// leaderSeenBy is the leading server's name as the server cl reaches
// first knows it ("" when none or none answers).
func leaderSeenBy(cl *client.Client) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	members, err := cl.Members(ctx)
	if err != nil {
		return ""
	}
	for _, m := range members {
		if m.Leader {
			return m.Name
		}
	}
	return ""
}

// TestClusterSurvivesLeaderLoss writes through a three-server cluster while
// its leader is killed with SIGKILL: every acknowledged write is there
// afterwards, on every server, and the cluster takes new writes under a
// new leader. The old leader, restarted, catches up.
func TestClusterSurvivesLeaderLoss(t *testing.T) {
	parallel(t)
	c := newServers(t, 3)
	out := c.mustWeft("operator", "members")
	if strings.Count(out, "true") < 3 { // one leader column, three voter columns
		t.Errorf("operator members:\n%s", out)
	}
	// These servers run with --no-storage: no storage placement to show.
	if _, errOut, code := c.weft("operator", "storage"); code != 1 || !strings.Contains(errOut, "--no-storage") {
		t.Errorf("operator storage without storage: exit %d, stderr %q", code, errOut)
	}

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("acct%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := c.client.CreateStorageAccount(ctx, name)
			cancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, name)
				mu.Unlock()
			} else {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	time.Sleep(time.Second)
	old := c.leader()
	killed := time.Now()
	c.kill9(c.servers[old])
	c.waitFor("a new leader", 20*time.Second, func() bool { l := c.leader(); return l != "" && l != old })
	t.Logf("new leader %s elected %s after the old one was killed", c.leader(), time.Since(killed).Round(time.Millisecond))
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	c.waitFor("writes acknowledged by the new leader", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > before+5
	})
	close(stop)
	wg.Wait()

	accounts, err := c.client.StorageAccounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, a := range accounts {
		have[a.Name] = true
	}
	for _, name := range acked {
		if !have[name] {
			t.Errorf("acknowledged write %s is lost", name)
		}
	}
	t.Logf("%d writes acknowledged, %d accounts stored", len(acked), len(accounts))

	// The old leader comes back as a follower and catches up; a stale read
	// of its own copy then has every acknowledged write.
	c.startReplica(old, c.servers[old].addr, strings.Split(c.apiArg, ","))
	own := c.clientFor(c.servers[old].addr)
	c.waitFor("the restarted server caught up", 20*time.Second, func() bool {
		var list []api.StorageAccount
		_, err := own.Do(context.Background(), "GET", "/v1/storage/accounts", url.Values{"stale": {""}}, nil, &list)
		return err == nil && len(list) >= len(acked)
	})
	if _, err := own.CreateStorageAccount(context.Background(), "throughfollower"); err != nil {
		t.Errorf("a write sent to a follower: %v", err)
	}
}

// TestClusterKeepsServingWhenAServerDies runs a web role under a
// three-server cluster and kills the leader: every surviving server's load
// balancer keeps answering, the agents fail over to the other servers
// without any node being declared down or any instance restarted, and the
// new leader scales the role with the package the dead leader received.
func TestClusterKeepsServingWhenAServerDies(t *testing.T) {
	parallel(t)
	c := newServers(t, 3)
	c.startNodes(2)
	port := freePort(t)
	c.mustWeft("deploy", "-f", c.service("web", port, 2, "hello"), "--wait")
	before := c.instances("web")

	old := c.leader()
	c.kill9(c.servers[old])
	c.waitFor("a new leader", 20*time.Second, func() bool { l := c.leader(); return l != "" && l != old })
	for name := range c.servers {
		if name == old {
			continue
		}
		url := fmt.Sprintf("http://%s:%d/", lbHost(name), port)
		if body := get(t, url); !strings.Contains(body, "hello") {
			t.Errorf("the load balancer of %s answered %q", name, body)
		}
	}
	time.Sleep(3 * time.Second) // more than the heartbeat TTL
	for _, n := range c.mustNodes() {
		if n.State != api.NodeReady {
			t.Errorf("node %s is %s after the leader change", n.Name, n.State)
		}
	}
	after := c.instances("web")
	for i := range before {
		if after[i].ID != before[i].ID || after[i].Restarts != before[i].Restarts {
			t.Errorf("instance %s changed across the leader change: %+v", before[i].ID, after[i])
		}
	}
	c.mustWeft("scale", "web", "web", "3", "--wait")
	if n := c.healthy("web"); n != 3 {
		t.Errorf("%d healthy instances after scaling to 3 under the new leader", n)
	}
}

// TestPackageOfALeaderThatSteppedDown uploads a package to the leader,
// which then loses the lead (frozen with SIGSTOP until another server
// leads) and comes back as a follower: a deploy of that package through
// the new leader goes through, the new leader fetching the package from
// the server that holds it.
func TestPackageOfALeaderThatSteppedDown(t *testing.T) {
	parallel(t)
	c := newServers(t, 3)
	old := c.leader()
	var pkg bytes.Buffer
	model := c.service("web", freePort(t), 1, "hello")
	if err := pkgarchive.Pack(filepath.Join(filepath.Dir(model), "package"), &pkg); err != nil {
		t.Fatal(err)
	}
	p, err := c.clientFor(c.servers[old].addr).UploadPackage(context.Background(), &pkg)
	if err != nil {
		t.Fatal(err)
	}

	c.servers[old].cmd.Process.Signal(syscall.SIGSTOP)
	var others []string
	for name, s := range c.servers {
		if name != old {
			others = append(others, s.addr)
		}
	}
	next := c.clientFor(strings.Join(others, ","))
	c.waitFor("a new leader", 20*time.Second, func() bool { l := leaderSeenBy(next); return l != "" && l != old })
	c.servers[old].cmd.Process.Signal(syscall.SIGCONT)
	c.waitFor(old+" back, following", 20*time.Second, func() bool {
		l := leaderSeenBy(c.clientFor(c.servers[old].addr))
		return l != "" && l != old
	})

	model = writeFile(t, filepath.Join(c.dir, "web.yaml"), strings.Replace(readFile(t, model), "package: ./package", "package: "+p.Digest, 1))
	if _, errOut, code := c.weft("deploy", "-f", model); code != 0 {
		t.Fatalf("deploy of %s, uploaded to %s before it lost the lead: exit %d: %s", p.Digest, old, code, errOut)
	}
}

func (c *cluster) mustNodes() []api.Node {
	c.t.Helper()
	nodes, err := c.client.Nodes(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return nodes
}

// TestSnapshotRestoreOntoFreshServers saves a cluster's state with weft
// operator snapshot save and restores it onto a new cluster on fresh
// folders and ports: everything the first one held is there, and the new
// cluster's storage keeps its placement and serves the restored accounts.
// A corrupt snapshot is refused and changes nothing.
func TestSnapshotRestoreOntoFreshServers(t *testing.T) {
	parallel(t)
	first := newServers(t, 3)
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		first.mustWeft("storage", "account", "create", name)
	}
	file := filepath.Join(first.dir, "backup.snap")
	first.mustWeft("operator", "snapshot", "save", file)

	second := newServersWith(t, 3, storageFlags(t))
	second.mustWeft("storage", "account", "create", "delta")
	placed := second.storageInSync(60 * time.Second)
	bad := filepath.Join(second.dir, "bad.snap")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bad, data[:len(data)/2], 0o644)
	if _, errOut, code := second.weft("operator", "snapshot", "restore", bad); code == 0 || errOut == "" {
		t.Errorf("restoring a truncated snapshot: exit %d, %q", code, errOut)
	}
	if out := second.mustWeft("storage", "account", "list"); !strings.Contains(out, "delta") {
		t.Errorf("a refused restore changed the state:\n%s", out)
	}
	second.mustWeft("operator", "snapshot", "restore", file)
	out := second.mustWeft("storage", "account", "list")
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		if !strings.Contains(out, name) {
			t.Errorf("account %s missing after the restore:\n%s", name, out)
		}
	}
	if strings.Contains(out, "delta") {
		t.Errorf("the restore kept what the new cluster had before:\n%s", out)
	}
	// Every server has it, not only the leader.
	for _, s := range second.servers {
		var list []api.StorageAccount
		second.waitFor(s.name+" restored", 10*time.Second, func() bool {
			_, err := second.clientFor(s.addr).Do(context.Background(), "GET", "/v1/storage/accounts", url.Values{"stale": {""}}, nil, &list)
			return err == nil && len(list) == 3
		})
	}
	var got placement.Status
	second.waitFor("the storage placement after the restore", 10*time.Second, func() bool {
		got = second.storagePlacement()
		return got.Config.Epoch != 0
	})
	if !cmp.Equal(got, placed) {
		t.Errorf("the storage placement changed with the restore: %+v, was %+v", got, placed)
	}
	keys, err := second.client.StorageAccountKeys(context.Background(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := azblob.NewClientFromConnectionString(keys.ConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(context.Background(), "restored", nil); err != nil {
		t.Fatalf("the storage of a restored account: %v", err)
	}
}

// TestRollingRestartOfServers restarts each of three servers in turn (a
// graceful stop, then start on its data) while a web role serves: load
// sent to the load balancer of a server that is up loses no request, no
// instance restarts, and the cluster takes writes at the end.
func TestRollingRestartOfServers(t *testing.T) {
	parallel(t)
	c := newServers(t, 3)
	c.startNodes(2)
	port := freePort(t)
	c.mustWeft("deploy", "-f", c.service("web", port, 2, "hello"), "--wait")
	before := c.instances("web")
	names := []string{"s1", "s2", "s3"}
	for i, name := range names {
		other := names[(i+1)%len(names)]
		ctx, cancel := context.WithCancel(context.Background())
		results := make(chan loadgen.Result, 1)
		go func() { results <- loadgen.Run(ctx, fmt.Sprintf("http://%s:%d/", lbHost(other), port), 4, 0) }()

		s := c.servers[name]
		s.cmd.Process.Signal(syscall.SIGTERM)
		<-s.done
		c.startReplica(name, s.addr, strings.Split(c.apiArg, ","))
		c.waitFor(name+" back in the cluster", 30*time.Second, func() bool {
			_, err := c.clientFor(s.addr).Status(context.Background())
			return err == nil && c.leader() != ""
		})
		time.Sleep(500 * time.Millisecond)
		cancel()
		res := <-results
		t.Logf("restarting %s, load through %s: %s", name, other, res)
		if res.Requests == 0 || res.Failures != 0 {
			t.Errorf("restarting %s: %d of %d requests through %s failed: %v", name, res.Failures, res.Requests, other, res.Errors)
		}
	}
	after := c.instances("web")
	for i := range before {
		if after[i].ID != before[i].ID || after[i].Restarts != before[i].Restarts {
			t.Errorf("instance %s changed across the rolling restart: %+v", before[i].ID, after[i])
		}
	}
	c.mustWeft("storage", "account", "create", "afterall")
}

// TestTLSCluster runs three servers and two agents on the credentials of
// weft tls init: the servers form their cluster and replicate over mutual
// TLS, agents join with their certificate, the CLI works with the CA and
// the API token, and a caller with neither is refused.
func TestTLSCluster(t *testing.T) {
	parallel(t)
	c, creds, pool := newTLSServers(t)
	c.startNodes(2)
	port := freePort(t)
	c.mustWeft("deploy", "-f", c.service("web", port, 2, "hello"), "--wait")
	in := c.instances("web")[0]
	if out := c.mustWeft("logs", in.ID); out == "" {
		t.Error("no logs through the server from the agent (mutual TLS)")
	}
	if out := c.mustWeft("operator", "members"); strings.Count(out, "s") < 3 {
		t.Errorf("members:\n%s", out)
	}

	// No token and no certificate: refused. Plain HTTP: no answer.
	anonymous := client.New(c.api).WithTLS(&tls.Config{RootCAs: pool})
	_, err := anonymous.Services(context.Background())
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeUnauthorized {
		t.Errorf("a request without credentials: %v, want unauthorized", err)
	}
	if _, err := client.New("http://" + strings.Split(c.apiArg, ",")[0]).Services(context.Background()); err == nil {
		t.Error("a server with TLS answered plain HTTP")
	}
	// An agent with a wrong join token gets no certificate and stops.
	intruder := c.start("intruder", "agent", "--server", c.api, "--name", "intruder", "--data", filepath.Join(c.dir, "intruder"),
		"--join-token", "not-the-token", "--ca-cert", filepath.Join(creds, "ca.pem"))
	select {
	case <-intruder.done:
		if !strings.Contains(intruder.log.String(), "join the cluster") {
			t.Errorf("the intruder's error: %s", intruder.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Error("an agent with a wrong join token kept running")
	}
	if nodes := c.mustNodes(); len(nodes) != 2 {
		t.Errorf("%d nodes after the intruder, want 2", len(nodes))
	}
}

// newTLSServers starts three servers on the credentials of weft tls init
// (in the returned folder, with the CA in the returned pool), with extra
// server flags.
func newTLSServers(t *testing.T, serverFlags ...string) (*cluster, string, *x509.CertPool) {
	c := newServersWith(t, 3, serverFlags)
	return c, c.sec.dir, c.sec.pool
}

// startNodes starts agents node-1..node-n and waits until they are ready.
func (c *cluster) startNodes(n int) {
	c.t.Helper()
	for i := 1; i <= n; i++ {
		c.startAgent(fmt.Sprintf("node-%d", i))
	}
	c.waitFor(fmt.Sprintf("%d nodes ready", n), 20*time.Second, func() bool {
		nodes, err := c.client.Nodes(context.Background())
		if err != nil || len(nodes) != n {
			return false
		}
		for _, nd := range nodes {
			if nd.State != api.NodeReady {
				return false
			}
		}
		return true
	})
}
