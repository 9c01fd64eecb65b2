package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/weftcloud/weft/api"
	"github.com/weftcloud/weft/client"
	"github.com/weftcloud/weft/internal/access"
	"github.com/weftcloud/weft/internal/accounts"
	"github.com/weftcloud/weft/internal/audit"
	"github.com/weftcloud/weft/internal/controlapi"
	"github.com/weftcloud/weft/internal/drives"
	"github.com/weftcloud/weft/internal/fabric"
	"github.com/weftcloud/weft/internal/images"
	"github.com/weftcloud/weft/internal/networks"
	"github.com/weftcloud/weft/internal/pkgstore"
	"github.com/weftcloud/weft/internal/state"
	"github.com/weftcloud/weft/internal/storage"
	"github.com/weftcloud/weft/internal/storage/storageserver"
	"github.com/weftcloud/weft/internal/tenants"
	"github.com/weftcloud/weft/internal/vms"
	"github.com/weftcloud/weft/internal/vpn"
)

// tenancyController is the real API over a real state store, behind the
// access table and the audit log as a server has them, with callers
// authenticated by the tokens the store keeps (as the daemon does for
// tokens of weft token create). It returns the API's address and an
// operator token.
func tenancyController(t *testing.T) (addr, operator string) {
	t.Helper()
	addr, operator, _ = realController(t)
	return addr, operator
}

// realController is tenancyController, with its fabric controller (not
// running: a test that wants instances runs it).
func realController(t *testing.T) (addr, operator string, ctl *fabric.Controller) {
	t.Helper()
	dir := t.TempDir()
	store, err := state.Open(filepath.Join(dir, "state.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	pkgs, err := pkgstore.Open(filepath.Join(dir, "packages"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	ts := tenants.New(store, tenants.DefaultQuota())
	ctx := context.Background()
	if err := ts.EnsureDefault(ctx); err != nil {
		t.Fatal(err)
	}
	op, err := ts.CreateToken(ctx, api.CreateToken{Role: api.AccessOperator, Description: "the test's"}, "the test")
	if err != nil {
		t.Fatal(err)
	}
	// Every runtime joins networks: the CLI's tests deploy process roles
	// on them, and no agent runs here to attach them.
	ctl = fabric.New(fabric.Config{Tenants: ts, NetworkRuntimes: []string{api.RuntimeProcess, api.RuntimeContainer, api.RuntimeVM}}, store, pkgs, nil)
	auditLog := audit.New(store, 0, log)
	storageSrv, err := storageserver.Start(storageserver.Config{Data: filepath.Join(dir, "storage")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storageSrv.Close() })
	devKey, _ := base64.StdEncoding.DecodeString(storage.DevKey)
	disks := vms.NewDisks(storageSrv.URL(storage.Blob), storage.DevAccount, devKey)
	if err := disks.Init(ctx); err != nil {
		t.Fatal(err)
	}
	imgs := images.New(store, nil, nil, log)
	handler := controlapi.New(controlapi.Config{
		Controller: ctl, Tenants: ts, Audit: auditLog, Log: log, Portal: "https://portal.example",
		Accounts: accounts.New(store, func() accounts.Endpoints { return accounts.Endpoints{} }, false),
		Images:   imgs,
		Drives:   drives.New(store, ctl, disks, log),
		Networks: networks.New(store, ctl),
		VPNs:     vpn.New(store, ctl, nil, log),
		VMs:      vms.New(ctl, imgs, disks, log),
	})
	principal := func(w http.ResponseWriter, r *http.Request) (access.Principal, bool) {
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return access.Principal{}, true
		}
		tok, found := ts.Authenticate(bearer)
		if !found {
			writeAPIError(w, api.Errorf(api.CodeUnauthorized, "the token is unknown, expired or revoked"))
			return access.Principal{}, false
		}
		// The daemon records r.RemoteAddr, whose port changes each run.
		p := access.Principal{Role: access.Tenant, Name: tok.ID, Tenant: tok.Tenant, Access: tok.Role, Addr: "127.0.0.1"}
		if tok.Role == api.AccessOperator {
			p = access.Principal{Role: access.Operator, Name: tok.ID, Addr: "127.0.0.1"}
		}
		return p, true
	}
	denied := func(w http.ResponseWriter, r *http.Request, err error) {
		writeAPIError(w, api.Errorf(api.CodeForbidden, "%s", err))
	}
	srv := httptest.NewServer(access.Enforce(principal, denied, auditLog.Middleware(handler)))
	t.Cleanup(srv.Close)
	return srv.URL, op.Token, ctl
}

func writeAPIError(w http.ResponseWriter, e *api.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(api.HTTPStatus(e))
	json.NewEncoder(w).Encode(api.ErrorBody{Error: *e})
}

// scrub makes what changes from run to run fixed, keeping its width (so
// tables stay aligned): token secrets, the token IDs given (numbered in
// that order) and times.
func scrub(out string, ids ...string) string {
	out = regexp.MustCompile(`(wft_[a-z2-7]{16}_)[A-Za-z0-9_-]{43}`).ReplaceAllString(out, "${1}"+strings.Repeat("S", 43))
	for i, id := range ids {
		out = strings.ReplaceAll(out, id, fmt.Sprintf("id%014d", i+1))
	}
	out = regexp.MustCompile(`"\d{4}-\d\d-\d\dT[0-9:.]+Z"`).ReplaceAllString(out, `"2026-01-02T03:04:05Z"`)
	out = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`).ReplaceAllString(out, "2026-01-02 03:04:05")
	return regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d`).ReplaceAllString(out, "2026-01-02 03:04")
}

// modelNamed writes writeModel's service under another name.
func modelNamed(t *testing.T, name string) string {
	file := writeModel(t)
	data, _ := os.ReadFile(file)
	os.WriteFile(file, bytes.Replace(data, []byte("name: hello"), []byte("name: "+name), 1), 0o644)
	return file
}

// TestTenancyCommands drives the tenancy verbs as the operator and as a
// tenant's owner against the real API, and compares what they print with
// the golden files.
func TestTenancyCommands(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no token kept by a local server
	addr, op := tenancyController(t)
	as := func(token string, args ...string) (string, string, int) {
		t.Helper()
		return weft(t, addr, append([]string{"--token", token}, args...)...)
	}
	mustAs := func(token string, args ...string) string {
		t.Helper()
		out, errOut, code := as(token, args...)
		if code != 0 {
			t.Fatalf("weft %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}

	mustAs(op, "tenant", "create", "acme", "--cpu", "4", "--memory", "8Gi", "--instances", "3", "--ports", "31000-31009")
	mustAs(op, "tenant", "create", "beta")
	mustAs(op, "tenant", "quota", "set", "acme", "--vms", "unlimited", "--endpoints", "2", "--storage", "1.5Gi")
	created := mustAs(op, "token", "create", "--tenant", "acme", "--role", "owner", "--description", "ci deploys", "-o", "json")
	opID := strings.Split(op, "_")[1]
	ownerID := regexp.MustCompile(`"id": "(\w+)"`).FindStringSubmatch(created)[1]
	checkGolden(t, "token-create.json.golden", scrub(created, opID, ownerID))
	// The JSON is api.NewToken's, field for field.
	var tok api.NewToken
	dec := json.NewDecoder(strings.NewReader(created))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tok); err != nil {
		t.Fatalf("token create -o json: %v", err)
	}
	var fields map[string]any
	json.Unmarshal([]byte(created), &fields)
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"expires", "id", "role", "tenant", "token"}) {
		t.Errorf("token create -o json has the fields %v", got)
	}
	if d := time.Until(tok.Expires); d < 719*time.Hour || d > 720*time.Hour {
		t.Errorf("a token without --expires expires in %s, want 720h", d)
	}
	// The table form prints the token alone on stdout, and says it is
	// shown only now.
	out, errOut, code := as(op, "token", "create", "--tenant", "acme", "--role", "reader", "--expires", "48h")
	if code != 0 || !regexp.MustCompile(`^wft_\w+_[\w-]+\n$`).MatchString(out) || !strings.Contains(errOut, "shown only now") {
		t.Errorf("token create: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	reader := strings.TrimSpace(out)
	readerID := strings.Split(reader, "_")[1]

	// acme's owner deploys within its quota, and is refused past it with
	// the server's message as it is.
	mustAs(tok.Token, "deploy", "-f", writeModel(t))
	_, errOut, code = as(tok.Token, "deploy", "-f", modelNamed(t, "more"))
	_, errOut, _ = strings.Cut(errOut, "bytes)\n") // after the upload's progress
	if want := "weft: quota exceeded: instances 2 used + 2 asked > 3 allowed (tenant acme; the operator raises it with weft tenant quota set)\n"; code != 1 || errOut != want {
		t.Errorf("deploy past the quota: exit %d, stderr %q", code, errOut)
	}
	// The operator deploys in the default tenant, and in acme's name.
	mustAs(op, "deploy", "-f", modelNamed(t, "site"))

	for _, tc := range []struct {
		golden string
		token  string
		args   []string
	}{
		{"tenant-list.golden", op, []string{"tenant", "list"}},
		{"tenant-list.json.golden", op, []string{"tenant", "list", "-o", "json"}},
		{"tenant-show.golden", op, []string{"tenant", "show", "acme"}},
		{"tenant-show-own.golden", tok.Token, []string{"tenant", "show", "acme"}},
		{"token-list.golden", op, []string{"token", "list", "--tenant", "acme"}},
		{"token-list-all.golden", op, []string{"token", "list", "-A"}},
		{"services-all.golden", op, []string{"services", "-A"}},
		{"services-acme.golden", op, []string{"services", "--tenant", "acme"}},
		{"whoami.golden", tok.Token, []string{"whoami"}},
		{"audit.golden", op, []string{"audit"}},
		{"audit-limit.json.golden", op, []string{"audit", "--limit", "2", "-o", "json"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, errOut, code := as(tc.token, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, tc.golden, strings.ReplaceAll(scrub(out, opID, tok.ID, readerID), addr, "http://127.0.0.1:7070"))
		})
	}

	link := mustAs(op, "signin-link", "--tenant", "acme", "--role", "contributor")
	if !strings.HasPrefix(link, "https://portal.example/signin/") {
		t.Errorf("signin-link printed %q", link)
	}
	if out := mustAs(op, "token", "revoke", tok.ID); out != "token "+tok.ID+": revoked\n" {
		t.Errorf("token revoke printed %q", out)
	}
	if out := mustAs(op, "tenant", "delete", "beta"); out != "tenant beta: deleted\n" {
		t.Errorf("tenant delete printed %q", out)
	}

	for _, tc := range []struct {
		token  string
		args   []string
		code   int
		stderr string
	}{
		{tok.Token, []string{"whoami"}, 1, "weft: the token is unknown, expired or revoked\n"},
		{reader, []string{"tenant", "list"}, 1, "weft: tenant acme's reader token " + readerID + " may not call this route (it is for the operator)\n"},
		{reader, []string{"deploy", "-f", writeModel(t)}, 1, "may not call this route"},
		{op, []string{"tenant", "show", "beta"}, 1, "weft: no tenant named beta\n"},
		{op, []string{"tenant", "delete", "acme"}, 1, "weft: tenant acme still owns 1 service or VM: delete them first\n"},
		{op, []string{"tenant", "create", "gamma", "--cpu", "lots"}, 2, `weft: --cpu: "lots" is not a limit (a number, not negative) or unlimited` + "\n"},
		{op, []string{"tenant", "create", "gamma", "--memory", "-1Gi"}, 2, "--memory:"},
		{op, []string{"tenant", "create", "gamma", "--ports", "9-1"}, 2, `weft: --ports: "9-1" is not a range of ports FROM-TO (1-65535) or none` + "\n"},
		{op, []string{"tenant", "create", "gamma", "--ports", "31005-31020"}, 1, "weft: ports: 31005-31020 overlaps the ports of tenant acme\n"},
		{op, []string{"tenant", "quota", "set", "acme"}, 2, "give at least one limit"},
		{op, []string{"tenant", "quota", "set", "nope", "--cpu", "1"}, 1, "weft: no tenant named nope\n"},
		{op, []string{"token", "create", "--tenant", "acme"}, 2, "--role is required"},
		{op, []string{"token", "create", "--tenant", "acme", "--role", "admin"}, 1, `weft: role: "admin" is not a role`},
		{op, []string{"services", "-A", "--tenant", "acme"}, 2, "not both"},
		{op, []string{"service", "show", "hello", "-A"}, 2, "unknown shorthand flag"},
		{op, []string{"audit", "--since", "yesterday"}, 2, "--since"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := as(tc.token, tc.args...)
			if code != tc.code || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "weft: ") || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and one line with %q", code, out, errOut, tc.code, tc.stderr)
			}
		})
	}
	// The refused changes left acme as it was.
	out, _, _ = as(op, "tenant", "show", "acme")
	checkGolden(t, "tenant-show.golden", scrub(out, opID))
	if _, _, code := as(op, "tenant", "show", "gamma"); code != 1 {
		t.Error("a refused tenant create made the tenant")
	}
}

// weftIn runs a command line with stdin and without --addr, as a person
// types it.
func weftIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	a.stdin = strings.NewReader(stdin)
	code = a.execute(context.Background(), args)
	return out.String(), errb.String(), code
}

// TestLogin: weft login keeps the token and the address in a private file;
// later commands use them, unless --token/WEFT_TOKEN or --addr/WEFT_ADDR
// say otherwise; weft logout forgets them.
func TestLogin(t *testing.T) {
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("WEFT_ADDR", "")
	t.Setenv("WEFT_TOKEN", "")
	t.Setenv("WEFT_TENANT", "")
	addr, op := tenancyController(t)
	c := client.New(addr).WithToken(op)
	if _, err := c.CreateTenant(context.Background(), api.CreateTenant{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	owner, err := c.CreateToken(context.Background(), api.CreateToken{Tenant: "acme", Role: api.AccessOwner})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(config, "weft", "tokens.json")

	// A wrong token is refused, and nothing is kept.
	if _, errOut, code := weftIn(t, "wft_nope_nope\n", "login", "--addr", addr); code != 1 || !strings.Contains(errOut, "unknown, expired or revoked") {
		t.Errorf("login with a wrong token: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("a refused login wrote %s: %v", file, err)
	}
	if _, errOut, code := weftIn(t, "", "login", "--addr", addr); code != 2 || !strings.Contains(errOut, "no token") {
		t.Errorf("login without a token: exit %d, stderr %q", code, errOut)
	}

	// From stdin (not a terminal: no prompt).
	out, errOut, code := weftIn(t, owner.Token+"\n", "login", "--addr", addr)
	if want := "signed in to " + addr + " as tenant acme (owner), token " + owner.ID + "\n"; code != 0 || out != want || errOut != "" {
		t.Fatalf("login: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", file, fi.Mode(), err)
	}
	data, _ := os.ReadFile(file)
	if strings.Count(string(data), owner.Token) != 1 {
		t.Errorf("tokens file %s lacks the token", data)
	}

	whoami := func(args ...string) string {
		t.Helper()
		out, errOut, code := weftIn(t, "", append([]string{"whoami"}, args...)...)
		if code != 0 {
			return "error: " + errOut
		}
		return out
	}
	tenantAt := "tenant acme (owner), token " + owner.ID + " at " + addr + "\n"
	if got := whoami(); got != tenantAt {
		t.Errorf("whoami after login: %q, want %q", got, tenantAt)
	}
	// --token and WEFT_TOKEN win over the kept token.
	opAt := "the operator, token " + strings.Split(op, "_")[1] + " at " + addr + "\n"
	if got := whoami("--token", op); got != opAt {
		t.Errorf("whoami --token: %q, want %q", got, opAt)
	}
	t.Setenv("WEFT_TOKEN", op)
	if got := whoami(); got != opAt {
		t.Errorf("whoami with WEFT_TOKEN: %q, want %q", got, opAt)
	}
	t.Setenv("WEFT_TOKEN", "")
	// --addr and WEFT_ADDR win over the kept address.
	if got := whoami("--addr", "http://127.0.0.1:1"); !strings.Contains(got, "cannot reach the controller at http://127.0.0.1:1") {
		t.Errorf("whoami --addr: %q", got)
	}
	t.Setenv("WEFT_ADDR", "http://127.0.0.1:1")
	if got := whoami(); !strings.Contains(got, "cannot reach the controller at http://127.0.0.1:1") {
		t.Errorf("whoami with WEFT_ADDR: %q", got)
	}
	t.Setenv("WEFT_ADDR", "")

	// WEFT_TOKEN signs in too, and replaces the kept token.
	t.Setenv("WEFT_TOKEN", op)
	if out, errOut, code := weftIn(t, "", "login", "--addr", addr); code != 0 || !strings.HasPrefix(out, "signed in to "+addr+" as the operator") {
		t.Errorf("login with WEFT_TOKEN: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Setenv("WEFT_TOKEN", "")
	if got := whoami(); got != opAt {
		t.Errorf("whoami after the second login: %q, want %q", got, opAt)
	}

	if out, errOut, code := weftIn(t, "", "logout"); code != 0 || out != "signed out of "+addr+"\n" {
		t.Errorf("logout: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if client.SavedToken(addr) != "" || client.CurrentAddr() != "" {
		t.Errorf("after logout the file still holds the token or the address")
	}
	if _, errOut, code := weftIn(t, "", "logout", "--addr", addr); code != 1 || !strings.Contains(errOut, "no token is kept for "+addr) {
		t.Errorf("second logout: exit %d, stderr %q", code, errOut)
	}
	if diff := cmp.Diff(0o600, int(mustStat(t, file).Mode().Perm())); diff != "" {
		t.Errorf("tokens file mode after logout: %s", diff)
	}

	// logout --revoke also revokes it: the servers refuse it afterwards.
	if _, errOut, code := weftIn(t, owner.Token+"\n", "login", "--addr", addr); code != 0 {
		t.Fatalf("login again: %s", errOut)
	}
	if out, errOut, code := weftIn(t, "", "logout", "--revoke"); code != 0 || out != "signed out of "+addr+"; the token is revoked\n" {
		t.Errorf("logout --revoke: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if client.SavedToken(addr) != "" {
		t.Error("after logout --revoke the file still holds the token")
	}
	if got := whoami("--addr", addr, "--token", owner.Token); !strings.Contains(got, "unknown, expired or revoked") {
		t.Errorf("whoami with the revoked token: %q", got)
	}
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// TestLoginReadsTerminalWithoutEcho: on a terminal, weft login asks for
// the token, reads it without echoing it, and turns the echo back on.
func TestLoginReadsTerminalWithoutEcho(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("WEFT_TOKEN", "")
	addr, op := tenancyController(t)
	master, tty := openPTY(t)
	// Type the token once the echo is off: the terminal echoes what it
	// receives while the echo is on.
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS); err == nil && tio.Lflag&unix.ECHO == 0 {
				break
			}
		}
		master.WriteString(op + "\n")
	}()
	var out, errb bytes.Buffer
	a := newApp(&out, &errb)
	a.stdin = tty
	if code := a.execute(context.Background(), []string{"login", "--addr", addr}); code != 0 {
		t.Fatalf("login: exit %d, stderr %q", code, errb.String())
	}
	if errb.String() != "API token: \n" || !strings.HasPrefix(out.String(), "signed in to "+addr+" as the operator") {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}
	// What the terminal sent back, read without blocking (the pty is not
	// in Go's poller, so read deadlines do not apply).
	// (File.Fd makes the file blocking again: take the descriptor once.)
	var echoed []byte
	fd := int(master.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			break
		}
		echoed = append(echoed, buf[:n]...)
	}
	if strings.Contains(string(echoed), op) {
		t.Errorf("the terminal echoed the token: %q", echoed)
	}
	if tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS); err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Errorf("the echo is still off after login (%v)", err)
	}
}

// openPTY opens a pseudo-terminal: what a test writes to master, a command
// reading tty reads as typed; it skips the test where there is none.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	var err error
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}
